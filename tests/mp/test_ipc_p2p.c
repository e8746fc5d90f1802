/*
 * test_ipc_p2p.c - send/recv and isend of CUDA device memory between the
 * ranks of one host over CUDA IPC (src/backend/ipc.c, the offers of
 * src/core/p2p.c), on the strict fake device, real processes. Every
 * message is checked against the pattern its sender wrote
 * (st_fill_pattern, seeded by sender, receiver and case), the bytes
 * around it untouched; and which way it went, in the metrics
 * (scomm_metrics_text: scomm_ops_total{op="send"|"recv",algo="cuda_ipc"}
 * counts the messages the receiver copied out of the sender's memory).
 *
 *   sizes:  every ordered pair, 0, 1, 7, 4097, 65537 and 1 MiB + 3 bytes
 *           (above the 64 KiB staging chunk ctest sets), sent from an odd
 *           offset inside a larger allocation (a copy from the wrong
 *           offset reads the 0x5a around it) into a receive buffer 16
 *           bytes longer, the sender overwriting its buffer as soon as
 *           the send returns (the receiver must have copied by then);
 *   order:  six messages on one (peer, tag), blocking sends offered over
 *           IPC between non-blocking (staged) ones, received by six
 *           receives posted early, device and host buffers alternating;
 *   mixed:  device -> host (declined, staged) and host -> device;
 *   trunc:  a receive one byte short: SCOMM_ERR_TRUNCATED on both sides,
 *           the receive buffer untouched.
 *   isend:  scomm_isend (the offer at the call, the rest in the progress):
 *           every pair into an irecv, a blocking recv, a receive polled
 *           with scomm_test and a host buffer (declined), the receiver
 *           posting only once told by a message sent after the isend
 *           returned; nine isends in flight on one tag, device and host
 *           memory, receives posted before and after (order); declined
 *           bytes sent from inside a blocking receive's progress; a ring
 *           in a group; a receive one byte short. The metrics' isend
 *           series counts each once, algo cuda_ipc when it went over IPC.
 *
 * IPC_P2P_MODE (set by ctest) says what should happen to a message that
 * can go over IPC (device to device, above P2P_EAGER, the eager limit
 * ctest gives the transport):
 *   ipc      copied over IPC (FAKE_STREAM_DELAY_MS on the last rank makes
 *            its copies late: a sender that returned before the copy was
 *            done would have overwritten the bytes first); also run on a
 *            GPU by scripts/gpu-check.sh (step ipc-p2p);
 *   staged   SCOMM_DEVICE_IPC=0 on every rank: nothing offered or opened;
 *   rxoff    the ranks but 0 set SCOMM_DEVICE_IPC=0: rank 0's offers are
 *            declined by its receivers, the others offer nothing;
 *   openfail every rank's fake fails each open (FAKE_IPC_OPEN_FAIL):
 *            every offer declined, the bytes staged, nobody hangs;
 *   timeout, kill  2 ranks, run_fault: an isend never received ends with
 *            the error naming the receiver (its timeout, its death).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scomm.h"
#include "st_test.h"

#define NELEM(_a) (sizeof(_a) / sizeof((_a)[0]))
#define FRONT     4133 /* bytes before a sent buffer in its allocation */

enum { MODE_IPC, MODE_STAGED, MODE_RXOFF, MODE_OPENFAIL };

static struct {
    int (*malloc_)(void **p, size_t n);
    int (*free_)(void *p);
    int (*memcpy_)(void *d, const void *s, size_t n, int kind);
    int64_t (*stat)(const char *name);
    int    mode;
    size_t eager;
} t;

static void load(void)
{
    const char *lib = getenv("SCOMM_CUDART_LIBRARY");
    const char *m   = getenv("IPC_P2P_MODE");
    const char *e   = getenv("P2P_EAGER");
    void *dl;

    dl = (lib != NULL) ? dlopen(lib, RTLD_NOW | RTLD_GLOBAL) : NULL;
    if ((dl == NULL) || (m == NULL) || (e == NULL)) {
        ST_SKIP("needs SCOMM_CUDART_LIBRARY (the fake runtime), "
                "IPC_P2P_MODE and P2P_EAGER (ctest sets them)");
    }
    *(void **)&t.malloc_ = dlsym(dl, "cudaMalloc");
    *(void **)&t.free_   = dlsym(dl, "cudaFree");
    *(void **)&t.memcpy_ = dlsym(dl, "cudaMemcpy");
    *(void **)&t.stat    = dlsym(dl, "fkd_stat");
    /* fkd_stat: the fake's only (scripts/gpu-check.sh runs this on a GPU) */
    ST_ASSERT((t.malloc_ != NULL) && (t.free_ != NULL) &&
              (t.memcpy_ != NULL));
    t.mode  = (strcmp(m, "ipc") == 0)      ? MODE_IPC
              : (strcmp(m, "staged") == 0) ? MODE_STAGED
              : (strcmp(m, "rxoff") == 0)  ? MODE_RXOFF
                                           : MODE_OPENFAIL;
    t.eager = (size_t)strtoull(e, NULL, 10);
}

/* Device memory of front + n + 64 bytes, all 0x5a but the n bytes at
 * front, which hold h (when not NULL). */
static char *dput(const void *h, size_t n, size_t front)
{
    size_t all = front + n + 64;
    char *tmp  = malloc(all), *d = NULL;

    ST_ASSERT(tmp != NULL);
    memset(tmp, 0x5a, all);
    if (h != NULL) {
        memcpy(tmp + front, h, n);
    }
    ST_ASSERT(t.malloc_((void **)&d, all) == 0);
    ST_ASSERT(t.memcpy_(d, tmp, all, 1) == 0);
    free(tmp);
    return d;
}

/* The whole allocation of dput(_, n, front) back on the host. */
static char *dget(const char *d, size_t n, size_t front)
{
    char *h = malloc(front + n + 64);

    ST_ASSERT(h != NULL);
    ST_ASSERT(t.memcpy_(h, d, front + n + 64, 2) == 0);
    return h;
}

static uint64_t seed(int from, int to, int what, size_t k)
{
    return (uint64_t)from * 1000003u + (uint64_t)to * 7919u +
           (uint64_t)what * 131u + k;
}

/* scomm_ops_total of this process for op and algo (every communicator). */
static uint64_t ops(const char *op, const char *algo)
{
    char *text = NULL, key[96], *p, *nl;
    uint64_t sum = 0;
    size_t len   = 0;

    ST_ASSERT_OK(scomm_metrics_text(&text, &len));
    snprintf(key, sizeof(key), "op=\"%s\",algo=\"%s\"", op, algo);
    for (p = text; (p != NULL) && (*p != '\0'); p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if ((strncmp(p, "scomm_ops_total{", 16) == 0) &&
            (strstr(p, key) != NULL) &&
            ((nl == NULL) || (strstr(p, key) < nl))) {
            const char *v = strchr(p, '}');

            ST_ASSERT(v != NULL);
            sum += (uint64_t)strtoull(v + 1, NULL, 10);
        }
    }
    scomm_metrics_free(text);
    return sum;
}

/* Should a message of n bytes from device memory into device memory go
 * over IPC? Eager (and empty) messages stay as they are; in the other
 * modes nothing is copied over IPC (rxoff: rank 0's offers declined). */
static int want_ipc(size_t n)
{
    return (t.mode == MODE_IPC) && (n > 0) && (n > t.eager);
}

static void check_bytes(const char *got, size_t n, uint64_t sd,
                        const char *what, int rank)
{
    size_t bad = st_check_pattern(got, n, sd);

    if (bad != SIZE_MAX) {
        fprintf(stderr, "rank %d: %s: %zu bytes: first bad byte at %zu\n",
                rank, what, n, bad);
    }
    ST_ASSERT_EQ(bad, SIZE_MAX);
}

/* The bytes around a received message are still 0x5a. */
static void check_around(const char *all, size_t front, size_t n,
                         size_t tail, int rank)
{
    size_t i;

    for (i = 0; i < front; i++) {
        ST_ASSERT_EQ((unsigned char)all[i], 0x5a);
    }
    for (i = front + n; i < front + n + tail; i++) {
        if ((unsigned char)all[i] != 0x5a) {
            fprintf(stderr, "rank %d: byte %zu after the message written\n",
                    rank, i - front - n);
        }
        ST_ASSERT_EQ((unsigned char)all[i], 0x5a);
    }
}

static void sizes(scomm_comm_t *comm)
{
    static const size_t sz[] = {0, 1, 7, 4097, 65537, (1u << 20) + 3};
    int r = scomm_rank(comm), p = scomm_size(comm), src, dst;
    size_t k, n, front;

    for (k = 0; k < NELEM(sz); k++) {
        n = sz[k];
        for (src = 0; src < p; src++) {
            for (dst = 0; dst < p; dst++) {
                int ipc = want_ipc(n);
                uint64_t sd = seed(src, dst, 1, k), before;
                char *h, *d, *all;

                if ((src == dst) || ((r != src) && (r != dst))) {
                    continue;
                }
                front = FRONT + (size_t)src * 8 + 1; /* odd, per sender */
                if (r == src) {
                    h = malloc(n + 1);
                    ST_ASSERT(h != NULL);
                    st_fill_pattern(h, n, sd);
                    d      = dput(h, n, front);
                    before = ops("send", "cuda_ipc");
                    ST_ASSERT_OK(scomm_send(d + front, n, SCOMM_UINT8, dst,
                                            (int32_t)k, comm));
                    /* the receiver is done with it: overwrite it now */
                    memset(h, 0xa5, n + 1);
                    ST_ASSERT(t.memcpy_(d + front, h, n, 1) == 0);
                    ST_ASSERT_EQ(ops("send", "cuda_ipc") - before,
                                 (uint64_t)ipc);
                    free(h);
                    t.free_(d);
                } else {
                    d      = dput(NULL, n + 16, 64);
                    before = ops("recv", "cuda_ipc");
                    ST_ASSERT_OK(scomm_recv(d + 64, n + 16, SCOMM_UINT8, src,
                                            (int32_t)k, comm));
                    ST_ASSERT_EQ(ops("recv", "cuda_ipc") - before,
                                 (uint64_t)ipc);
                    all = dget(d, n + 16, 64);
                    check_bytes(all + 64, n, sd, "sizes", r);
                    check_around(all, 64, n, 16 + 64, r);
                    free(all);
                    t.free_(d);
                }
            }
        }
    }
}

/* Rank 0 -> rank 1, one tag: blocking sends (offers) between isends
 * (staged), six receives posted first, device and host buffers. */
static void order(scomm_comm_t *comm)
{
    enum { K = 6 };
    int r = scomm_rank(comm);
    size_t n[K];
    char *h[K], *d[K];
    scomm_req_t *req[K];
    int k, nipc = 0;
    uint64_t before;

    for (k = 0; k < K; k++) {
        n[k] = t.eager + 1 + (size_t)k * 1001;
    }
    if (r == 1) {
        for (k = 0; k < K; k++) {
            h[k] = malloc(n[k]);
            ST_ASSERT(h[k] != NULL);
            memset(h[k], 0x5a, n[k]);
            d[k] = (k % 2 == 0) ? dput(NULL, n[k], 0) : NULL;
            ST_ASSERT_OK(scomm_irecv((d[k] != NULL) ? d[k] : h[k], n[k],
                                     SCOMM_UINT8, 0, 77, comm, &req[k]));
        }
    }
    ST_ASSERT_OK(scomm_barrier(comm));
    if (r == 0) {
        scomm_req_t *sreq[K];
        int ns = 0;

        before = ops("send", "cuda_ipc");
        for (k = 0; k < K; k++) {
            h[k] = malloc(n[k]);
            ST_ASSERT(h[k] != NULL);
            st_fill_pattern(h[k], n[k], seed(0, 1, 2, (size_t)k));
            d[k] = dput(h[k], n[k], 0);
            if (k % 3 == 2) {
                ST_ASSERT_OK(scomm_isend(d[k], n[k], SCOMM_UINT8, 1, 77,
                                         comm, &sreq[ns++]));
            } else {
                ST_ASSERT_OK(scomm_send(d[k], n[k], SCOMM_UINT8, 1, 77,
                                        comm));
                nipc += (k % 2 == 0) && want_ipc(n[k]);
            }
        }
        ST_ASSERT_OK(scomm_wait_all((size_t)ns, sreq));
        /* the blocking sends into device receives went over IPC */
        ST_ASSERT_EQ(ops("send", "cuda_ipc") - before, (uint64_t)nipc);
    } else if (r == 1) {
        ST_ASSERT_OK(scomm_wait_all(K, req));
        for (k = 0; k < K; k++) {
            if (d[k] != NULL) {
                ST_ASSERT(t.memcpy_(h[k], d[k], n[k], 2) == 0);
            }
            check_bytes(h[k], n[k], seed(0, 1, 2, (size_t)k), "order", r);
        }
    }
    for (k = 0; (k < K) && (r <= 1); k++) {
        free(h[k]);
        t.free_(d[k]);
    }
    ST_ASSERT_OK(scomm_barrier(comm));
}

/* Device -> host (declined: staged) and host -> device (as always). */
static void mixed(scomm_comm_t *comm)
{
    int r = scomm_rank(comm);
    size_t n = t.eager + 3001, front = FRONT;
    char *h = malloc(n + 16), *d;
    uint64_t before_s = ops("send", "cuda_ipc");
    uint64_t before_r = ops("recv", "cuda_ipc");

    ST_ASSERT(h != NULL);
    if (r == 0) {
        st_fill_pattern(h, n, seed(0, 1, 3, 0));
        d = dput(h, n, front);
        ST_ASSERT_OK(scomm_send(d + front, n, SCOMM_UINT8, 1, 5, comm));
        t.free_(d);
        d = dput(NULL, n, 0);
        ST_ASSERT_OK(scomm_recv(d, n, SCOMM_UINT8, 1, 6, comm));
        ST_ASSERT(t.memcpy_(h, d, n, 2) == 0);
        check_bytes(h, n, seed(1, 0, 3, 0), "host -> device", r);
        t.free_(d);
    } else if (r == 1) {
        memset(h, 0x5a, n + 16);
        ST_ASSERT_OK(scomm_recv(h, n + 16, SCOMM_UINT8, 0, 5, comm));
        check_bytes(h, n, seed(0, 1, 3, 0), "device -> host", r);
        for (size_t i = n; i < n + 16; i++) {
            ST_ASSERT_EQ((unsigned char)h[i], 0x5a);
        }
        st_fill_pattern(h, n, seed(1, 0, 3, 0));
        ST_ASSERT_OK(scomm_send(h, n, SCOMM_UINT8, 0, 6, comm));
    }
    /* neither went over IPC */
    ST_ASSERT_EQ(ops("send", "cuda_ipc"), before_s);
    ST_ASSERT_EQ(ops("recv", "cuda_ipc"), before_r);
    free(h);
    ST_ASSERT_OK(scomm_barrier(comm));
}

/* A receive one byte short: the truncation error on both sides (as for
 * any message above the eager limit), the buffer untouched. Last: the
 * pair's stream of messages is not resumed after it. */
static void trunc_(scomm_comm_t *comm)
{
    int r = scomm_rank(comm);
    size_t n = t.eager + 5001;
    char *h, *d;

    if (r == 0) {
        h = malloc(n);
        ST_ASSERT(h != NULL);
        st_fill_pattern(h, n, 99);
        d = dput(h, n, 0);
        ST_ASSERT_STATUS(scomm_send(d, n, SCOMM_UINT8, 1, 9, comm),
                         SCOMM_ERR_TRUNCATED);
        free(h);
        t.free_(d);
    } else if (r == 1) {
        d = dput(NULL, n - 1, 0);
        ST_ASSERT_STATUS(scomm_recv(d, n - 1, SCOMM_UINT8, 0, 9, comm),
                         SCOMM_ERR_TRUNCATED);
        ST_ASSERT(strstr(scomm_comm_last_error(comm), "longer") != NULL);
        h = dget(d, n - 1, 0);
        check_around(h, n - 1 + 64, 0, 0, r); /* all of it still 0x5a */
        free(h);
        t.free_(d);
    }
}

/* ---- non-blocking sends (scomm_isend offered over CUDA IPC) ---- */

/* Messages counted under op isend: over IPC, and in all. */
static void isend_ops(uint64_t *ipc, uint64_t *all)
{
    *ipc = ops("isend", "cuda_ipc");
    *all = *ipc + ops("isend", "p2p");
}

/* The isend of n pattern bytes (sd) from device memory at an odd offset
 * to dst on tag, waited for (or polled to completion with scomm_test when
 * poll); then its buffer is overwritten at once (the receiver must be
 * done with it) and the metrics say how it went: one isend, over IPC
 * when ipc. Before the wait, a host message on tag + 1 tells dst to post
 * its receive: an isend that waited for its receiver would hang here. */
static void isend_one(scomm_comm_t *comm, int dst, int32_t tag, size_t n,
                      uint64_t sd, int ipc, int poll)
{
    uint64_t ipc0, all0, ipc1, all1;
    size_t front = FRONT + 2 * (size_t)scomm_rank(comm) + 1;
    char *h = malloc(n + 1), *d;
    scomm_req_t *req = NULL;
    int32_t done = 0, go = 1;
    long polls = 0;

    ST_ASSERT(h != NULL);
    st_fill_pattern(h, n, sd);
    d = dput(h, n, front);
    isend_ops(&ipc0, &all0);
    ST_ASSERT_OK(scomm_isend(d + front, n, SCOMM_UINT8, dst, tag, comm,
                             &req));
    if (poll) {
        /* dst has not posted its receive yet: not done */
        ST_ASSERT_OK(scomm_test(req, &done));
        ST_ASSERT_EQ(done, 0);
    }
    ST_ASSERT_OK(scomm_send(&go, 1, SCOMM_INT32, dst, tag + 1, comm));
    if (poll) {
        while (!done) {
            ST_ASSERT_OK(scomm_test(req, &done));
            polls++;
        }
        ST_ASSERT(polls > 0);
    } else {
        ST_ASSERT_OK(scomm_wait(req));
    }
    memset(h, 0xa5, n + 1);
    ST_ASSERT(t.memcpy_(d + front, h, n, 1) == 0);
    isend_ops(&ipc1, &all1);
    ST_ASSERT_EQ(ipc1 - ipc0, (uint64_t)ipc);
    ST_ASSERT_EQ(all1 - all0, 1);
    free(h);
    t.free_(d);
}

/* The receiving side of isend_one: into device memory (irecv, or a
 * blocking recv when blocking) or host memory (host), 16 bytes longer,
 * checked with the bytes around it. */
static void isend_one_rx(scomm_comm_t *comm, int src, int32_t tag, size_t n,
                         uint64_t sd, int ipc, int blocking, int host)
{
    uint64_t before = ops("recv", "cuda_ipc");
    scomm_req_t *req = NULL;
    int32_t go = 0;
    char *d = NULL, *all;

    ST_ASSERT_OK(scomm_recv(&go, 1, SCOMM_INT32, src, tag + 1, comm));
    ST_ASSERT_EQ(go, 1);
    if (host) {
        all = malloc(n + 16 + 128);
        ST_ASSERT(all != NULL);
        memset(all, 0x5a, n + 16 + 128);
        ST_ASSERT_OK(scomm_recv(all + 64, n + 16, SCOMM_UINT8, src, tag,
                                comm));
    } else {
        d = dput(NULL, n + 16, 64);
        if (blocking) {
            ST_ASSERT_OK(scomm_recv(d + 64, n + 16, SCOMM_UINT8, src, tag,
                                    comm));
            ST_ASSERT_EQ(ops("recv", "cuda_ipc") - before, (uint64_t)ipc);
        } else {
            ST_ASSERT_OK(scomm_irecv(d + 64, n + 16, SCOMM_UINT8, src, tag,
                                     comm, &req));
            ST_ASSERT_OK(scomm_wait(req));
        }
        all = dget(d, n + 16, 64);
        t.free_(d);
    }
    check_bytes(all + 64, n, sd, "isend", scomm_rank(comm));
    check_around(all, 64, n, 16 + 64, scomm_rank(comm));
    free(all);
}

/* isend + irecv, isend + blocking recv, isend polled by scomm_test, and
 * into a host buffer (declined, staged) over every ordered pair. */
static void isend_pairs(scomm_comm_t *comm)
{
    const size_t sz[] = {t.eager + 1, 65537, (1u << 20) + 3};
    int r = scomm_rank(comm), p = scomm_size(comm), src, dst, c;
    size_t k;

    for (k = 0; k < NELEM(sz); k++) {
        for (src = 0; src < p; src++) {
            for (dst = 0; dst < p; dst++) {
                if ((src == dst) || ((r != src) && (r != dst))) {
                    continue;
                }
                /* c: 0 irecv, 1 blocking recv, 2 polled, 3 host buffer */
                for (c = 0; c < 4; c++) {
                    uint64_t sd = seed(src, dst, 10 + c, k);
                    int32_t tag = 1000 + 10 * (int32_t)k + 2 * c;
                    int ipc     = want_ipc(sz[k]) && (c != 3);

                    if (r == src) {
                        isend_one(comm, dst, tag, sz[k], sd, ipc, c == 2);
                    } else {
                        isend_one_rx(comm, src, tag, sz[k], sd, ipc, c == 1,
                                     c == 3);
                    }
                }
            }
        }
    }
    ST_ASSERT_OK(scomm_barrier(comm));
}

/* Rank 0 -> rank 1 on one tag: K isends in flight at once, device and
 * host buffers (every third host memory), sizes around the eager limit;
 * rank 1 receives them in order, into device and host buffers, some
 * receives posted before the isends, the rest after. Each message must be
 * the one sent in that place. */
static void isend_order(scomm_comm_t *comm)
{
    enum { K = 9, EARLY = 4 };
    int r = scomm_rank(comm), k;
    size_t n[K];
    char *h[K], *d[K];
    scomm_req_t *req[K];
    uint64_t ipc0, all0, ipc1, all1;
    int nipc = 0;

    for (k = 0; k < K; k++) {
        n[k] = (k == 4) ? t.eager / 2 + 1 : t.eager + 1 + (size_t)k * 2999;
        if (k == 7) {
            n[k] = (1u << 20) + 5;
        }
    }
    if (r == 1) {
        for (k = 0; k < K; k++) {
            h[k] = malloc(n[k]);
            ST_ASSERT(h[k] != NULL);
            memset(h[k], 0x5a, n[k]);
            /* every receive into device memory but k = 1 and 6 */
            d[k] = ((k == 1) || (k == 6)) ? NULL : dput(NULL, n[k], 0);
            if (k == EARLY) {
                ST_ASSERT_OK(scomm_barrier(comm)); /* the isends go */
            }
            ST_ASSERT_OK(scomm_irecv((d[k] != NULL) ? d[k] : h[k], n[k],
                                     SCOMM_UINT8, 0, 88, comm, &req[k]));
        }
        ST_ASSERT_OK(scomm_wait_all(K, req));
        for (k = 0; k < K; k++) {
            if (d[k] != NULL) {
                ST_ASSERT(t.memcpy_(h[k], d[k], n[k], 2) == 0);
            }
            check_bytes(h[k], n[k], seed(0, 1, 20, (size_t)k), "isend order",
                        r);
        }
    } else if (r == 0) {
        isend_ops(&ipc0, &all0);
        for (k = 0; k < K; k++) {
            int dev = (k % 3 != 2);

            h[k] = malloc(n[k]);
            ST_ASSERT(h[k] != NULL);
            st_fill_pattern(h[k], n[k], seed(0, 1, 20, (size_t)k));
            d[k] = dev ? dput(h[k], n[k], 0) : NULL;
            nipc += dev && want_ipc(n[k]) && (k != 1) && (k != 6);
        }
        for (k = 0; k < K; k++) {
            if (k == EARLY) {
                ST_ASSERT_OK(scomm_barrier(comm)); /* the first receives */
            }
            ST_ASSERT_OK(scomm_isend((d[k] != NULL) ? d[k] : h[k], n[k],
                                     SCOMM_UINT8, 1, 88, comm, &req[k]));
        }
        ST_ASSERT_OK(scomm_wait_all(K, req));
        isend_ops(&ipc1, &all1);
        ST_ASSERT_EQ(ipc1 - ipc0, (uint64_t)nipc);
        ST_ASSERT_EQ(all1 - all0, (uint64_t)K);
    } else {
        ST_ASSERT_OK(scomm_barrier(comm));
    }
    for (k = 0; (k < K) && (r <= 1); k++) {
        free(h[k]);
        t.free_(d[k]);
    }
    ST_ASSERT_OK(scomm_barrier(comm));
}

/* The isend's request moved on by another call: rank 0 isends device
 * memory to rank 1, then waits in a blocking receive of rank 1's answer,
 * which rank 1 sends only once the isend's bytes arrived; a declined
 * isend's staged bytes must go out from inside that receive (the
 * progress), not from scomm_wait. Device and host receivers. */
static void isend_progress(scomm_comm_t *comm)
{
    int r = scomm_rank(comm), c;
    size_t n = t.eager + 70001;

    for (c = 0; (c < 2) && (r <= 1); c++) {
        uint64_t sd = seed(0, 1, 30 + c, 0);
        int32_t ans = 0;
        char *h = malloc(n + 1), *d;
        scomm_req_t *req = NULL;

        ST_ASSERT(h != NULL);
        if (r == 0) {
            st_fill_pattern(h, n, sd);
            d = dput(h, n, 0);
            ST_ASSERT_OK(scomm_isend(d, n, SCOMM_UINT8, 1, 60 + c, comm,
                                     &req));
            ST_ASSERT_OK(scomm_recv(&ans, 1, SCOMM_INT32, 1, 70 + c, comm));
            ST_ASSERT_EQ(ans, 42);
            ST_ASSERT_OK(scomm_wait(req));
            t.free_(d);
        } else {
            d = (c == 0) ? dput(NULL, n, 0) : NULL;
            ST_ASSERT_OK(scomm_recv((d != NULL) ? (void *)d : h, n,
                                    SCOMM_UINT8, 0, 60 + c, comm));
            if (d != NULL) {
                ST_ASSERT(t.memcpy_(h, d, n, 2) == 0);
                t.free_(d);
            }
            check_bytes(h, n, sd, "isend progress", r);
            ans = 42;
            ST_ASSERT_OK(scomm_send(&ans, 1, SCOMM_INT32, 0, 70 + c, comm));
        }
        free(h);
    }
    ST_ASSERT_OK(scomm_barrier(comm));
}

/* isends and irecvs of device memory inside a group (native
 * communicator: they are posted as they are issued, the same path). */
static void isend_group(scomm_comm_t *comm)
{
    int r = scomm_rank(comm), p = scomm_size(comm);
    int right = (r + 1) % p, left = (r + p - 1) % p;
    size_t n = t.eager + 12345;
    uint64_t ipc0, all0, ipc1, all1;
    char *h = malloc(n), *ds, *dr;
    scomm_req_t *req[2];

    ST_ASSERT(h != NULL);
    st_fill_pattern(h, n, seed(r, right, 40, 0));
    ds = dput(h, n, 0);
    dr = dput(NULL, n, 0);
    isend_ops(&ipc0, &all0);
    ST_ASSERT_OK(scomm_group_start());
    ST_ASSERT_OK(scomm_irecv(dr, n, SCOMM_UINT8, left, 90, comm, &req[0]));
    ST_ASSERT_OK(scomm_isend(ds, n, SCOMM_UINT8, right, 90, comm, &req[1]));
    ST_ASSERT_OK(scomm_group_end());
    ST_ASSERT_OK(scomm_wait_all(2, req));
    isend_ops(&ipc1, &all1);
    ST_ASSERT_EQ(ipc1 - ipc0, (uint64_t)want_ipc(n));
    ST_ASSERT_EQ(all1 - all0, 1);
    ST_ASSERT(t.memcpy_(h, dr, n, 2) == 0);
    check_bytes(h, n, seed(left, r, 40, 0), "isend group", r);
    free(h);
    t.free_(ds);
    t.free_(dr);
    ST_ASSERT_OK(scomm_barrier(comm));
}

/* An isend into a receive one byte short: SCOMM_ERR_TRUNCATED from the
 * isend's wait, naming the receiver; the receive's buffer untouched. */
static void isend_trunc(scomm_comm_t *comm)
{
    int r = scomm_rank(comm);
    size_t n = t.eager + 5001;
    scomm_req_t *req = NULL;
    char *h, *d;

    if (r == 0) {
        h = malloc(n);
        ST_ASSERT(h != NULL);
        st_fill_pattern(h, n, 98);
        d = dput(h, n, 0);
        ST_ASSERT_OK(scomm_isend(d, n, SCOMM_UINT8, 1, 10, comm, &req));
        ST_ASSERT_STATUS(scomm_wait(req), SCOMM_ERR_TRUNCATED);
        ST_ASSERT(strstr(scomm_last_error(), "rank 1") != NULL);
        free(h);
        t.free_(d);
    } else if (r == 1) {
        d = dput(NULL, n - 1, 0);
        ST_ASSERT_OK(scomm_irecv(d, n - 1, SCOMM_UINT8, 0, 10, comm, &req));
        ST_ASSERT_STATUS(scomm_wait(req), SCOMM_ERR_TRUNCATED);
        h = dget(d, n - 1, 0);
        check_around(h, n - 1 + 64, 0, 0, r); /* all of it still 0x5a */
        free(h);
        t.free_(d);
    }
}

static int run(int rank, int size, void *arg)
{
    scomm_comm_t *comm = NULL;
    int64_t opens;

    (void)arg;
    (void)size;
    load();
    if (t.mode == MODE_OPENFAIL) {
        setenv("FAKE_IPC_OPEN_FAIL", "1", 1);
    }
    if ((t.mode == MODE_STAGED) || ((t.mode == MODE_RXOFF) && (rank > 0))) {
        setenv("SCOMM_DEVICE_IPC", "0", 1);
    }
    if ((t.mode == MODE_IPC) && (rank == size - 1)) {
        setenv("FAKE_STREAM_DELAY_MS", "20", 1); /* its copies run late */
    }
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_EQ(scomm_local_size(comm), size);
    sizes(comm);
    order(comm);
    mixed(comm);
    isend_pairs(comm);
    isend_order(comm);
    isend_progress(comm);
    isend_group(comm);
    trunc_(comm);
    isend_trunc(comm);
    opens = (t.stat != NULL) ? t.stat("ipc_opens") : -1;
    if (opens < 0) {
        /* a real runtime: the metrics checks above are the path's */
    } else if (t.mode == MODE_IPC) {
        ST_ASSERT(opens > 0);
    } else {
        ST_ASSERT_EQ(opens, 0);
    }
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

/* IPC_P2P_MODE=timeout|kill (2 ranks, rank 1 the victim): rank 0's
 * isend over IPC to rank 1, which never receives it, ends its wait with
 * the error naming rank 1: SCOMM_ERR_TIMED_OUT after rank 0's 1 s
 * timeout (rank 1 waits meanwhile in a receive nothing answers), or
 * SCOMM_ERR_PEER_LOST once rank 1 exited. */
static int run_fault(int rank, int size, void *arg)
{
    const char *m = getenv("IPC_P2P_MODE");
    int kill      = (strcmp(m, "kill") == 0);
    size_t n      = t.eager + 10001;
    scomm_comm_t *comm = NULL;
    scomm_req_t *req   = NULL;
    int32_t go = 1;
    char *d;

    (void)arg;
    (void)size;
    load();
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_OK(scomm_barrier(comm));
    if (rank == 0) {
        d = dput(NULL, n, 0);
        ST_ASSERT_OK(scomm_comm_set_timeout(comm, kill ? 20000 : 1000));
        ST_ASSERT_OK(scomm_isend(d, n, SCOMM_UINT8, 1, 3, comm, &req));
        ST_ASSERT_OK(scomm_send(&go, 1, SCOMM_INT32, 1, 4, comm));
        ST_ASSERT_STATUS(scomm_wait(req), kill ? SCOMM_ERR_PEER_LOST
                                               : SCOMM_ERR_TIMED_OUT);
        if (strstr(scomm_last_error(), "rank 1") == NULL) {
            fprintf(stderr, "rank 0: the error does not name rank 1: %s\n",
                    scomm_last_error());
        }
        ST_ASSERT(strstr(scomm_last_error(), "rank 1") != NULL);
        t.free_(d);
        /* the world failed: nothing more to say to rank 1 */
        scomm_comm_destroy(comm);
        return 0;
    }
    ST_ASSERT_OK(scomm_recv(&go, 1, SCOMM_INT32, 0, 4, comm));
    if (kill) {
        _exit(3); /* with rank 0's offer unanswered */
    }
    /* nothing answers: ends with rank 0's fault (or this timeout) */
    ST_ASSERT(scomm_recv(&go, 1, SCOMM_INT32, 0, 5, comm) != SCOMM_OK);
    return 0;
}

int main(int argc, char **argv)
{
    const char *m = getenv("IPC_P2P_MODE");

    if ((m != NULL) &&
        ((strcmp(m, "timeout") == 0) || (strcmp(m, "kill") == 0))) {
        return st_run_ranks_victim(2, run_fault, NULL, 60, 1);
    }
    return st_main_ranks(argc, argv, run, NULL);
}
