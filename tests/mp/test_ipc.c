/*
 * test_ipc.c - CUDA IPC between the ranks of one host (src/backend/ipc.c)
 * on the strict fake device: all_gather (in place and not), broadcast
 * (every root) and all_to_all on device buffers under the hint
 * SCOMM_MEM_CUDA, odd counts, each result checked against the
 * pattern every rank computes for itself (st_fill_pattern), and the byte
 * after each output untouched. Which path ran is checked too:
 *
 *   IPC_EXPECT=ipc (default): the record says "path cuda_ipc" and the
 *     fake opened peers' memory (fkd_stat "ipc_opens");
 *   IPC_EXPECT=staged: SCOMM_DEVICE_IPC=0 is set for every rank (ctest):
 *     "path staged", nothing opened;
 *   IPC_EXPECT=openfail: the last rank's fake fails every open
 *     (FAKE_IPC_OPEN_FAIL, set by that rank alone): every rank falls back
 *     to staging, with the right data, and nobody hangs.
 *
 * In-place all_to_all is always staged (peers would read what it
 * overwrites), as is any call under a forced algorithm. Blocking
 * send/recv under the same hint run too, between the IPC collectives:
 * above the eager limit over IPC offers, below it staged
 * (test_ipc_p2p.c checks that path).
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coll/coll.h"
#include "scomm.h"
#include "st_test.h"

#define NELEM(_a) (sizeof(_a) / sizeof((_a)[0]))

enum { EXPECT_IPC, EXPECT_STAGED, EXPECT_OPENFAIL };

static struct {
    int (*malloc_)(void **p, size_t n);
    int (*free_)(void *p);
    int (*memcpy_)(void *d, const void *s, size_t n, int kind);
    int64_t (*stat)(const char *name);
    int expect;
} t;

static const size_t counts[] = {1, 7, 1021, 65539};

static void load(void)
{
    const char *lib = getenv("SCOMM_CUDART_LIBRARY");
    const char *e   = getenv("IPC_EXPECT");
    void *dl;

    dl = (lib != NULL) ? dlopen(lib, RTLD_NOW | RTLD_GLOBAL) : NULL;
    if (dl == NULL) {
        ST_SKIP("needs SCOMM_CUDART_LIBRARY (the fake runtime)");
    }
    *(void **)&t.malloc_ = dlsym(dl, "cudaMalloc");
    *(void **)&t.free_   = dlsym(dl, "cudaFree");
    *(void **)&t.memcpy_ = dlsym(dl, "cudaMemcpy");
    *(void **)&t.stat    = dlsym(dl, "fkd_stat");
    ST_ASSERT((t.malloc_ != NULL) && (t.free_ != NULL) &&
              (t.memcpy_ != NULL) && (t.stat != NULL));
    t.expect = ((e == NULL) || (strcmp(e, "ipc") == 0)) ? EXPECT_IPC
               : (strcmp(e, "staged") == 0)             ? EXPECT_STAGED
                                                        : EXPECT_OPENFAIL;
}

/* n bytes (+1 guard) of device memory holding h (or 0x5a). */
static char *dput(const void *h, size_t n)
{
    void *d = NULL;
    char *tmp = malloc(n + 1);

    ST_ASSERT(tmp != NULL);
    memset(tmp, 0x5a, n + 1);
    if (h != NULL) {
        memcpy(tmp, h, n);
    }
    ST_ASSERT(t.malloc_(&d, n + 1) == 0);
    ST_ASSERT(t.memcpy_(d, tmp, n + 1, 1) == 0);
    free(tmp);
    return d;
}

/* n + 1 bytes of device memory d back to the host (caller frees). */
static char *dget(const void *d, size_t n)
{
    char *h = malloc(n + 1);

    ST_ASSERT(h != NULL);
    ST_ASSERT(t.memcpy_(h, d, n + 1, 2) == 0);
    return h;
}

static uint64_t seed(int a, int b, size_t k)
{
    return (uint64_t)a * 1000003u + (uint64_t)b * 131u + k;
}

/* The record of the last collective says cuda_ipc when it could run
 * (ipc_possible) and IPC_EXPECT asks for it; or when the only rank whose
 * opens fail had nothing to open (dodges: a broadcast from it). */
static void expect_path(scomm_comm_t *comm, int ipc_possible, int dodges)
{
    scomm_coll_record_t rec;
    int want_ipc = ipc_possible &&
                   ((t.expect == EXPECT_IPC) ||
                    ((t.expect == EXPECT_OPENFAIL) && dodges));

    ST_ASSERT_OK(scomm_last_selection(comm, &rec));
    if (want_ipc != (strncmp(rec.reason, "path cuda_ipc", 13) == 0)) {
        fprintf(stderr, "rank %d: expected %s, record says %s / %s: %s\n",
                scomm_rank(comm), want_ipc ? "cuda_ipc" : "staged",
                rec.algo, rec.rule_id, rec.reason);
    }
    if (want_ipc) {
        ST_ASSERT(strncmp(rec.reason, "path cuda_ipc", 13) == 0);
        ST_ASSERT(strcmp(rec.algo, "cuda_ipc") == 0);
    } else {
        ST_ASSERT(strncmp(rec.reason, "path staged", 11) == 0);
    }
}

static void check_block(const char *got, size_t b, uint64_t sd,
                        const char *what, int rank)
{
    size_t bad = st_check_pattern(got, b, sd);

    if (bad != SIZE_MAX) {
        fprintf(stderr, "rank %d: %s: first bad byte at %zu of %zu\n", rank,
                what, bad, b);
    }
    ST_ASSERT_EQ(bad, SIZE_MAX);
}

static void all_gather(scomm_comm_t *comm)
{
    int r = scomm_rank(comm), p = scomm_size(comm), q, inplace;
    size_t k, b;

    for (k = 0; k < NELEM(counts); k++) {
        b = counts[k] * 4;
        for (inplace = 0; inplace < 2; inplace++) {
            char *mine = malloc(b), *dsend = NULL, *drecv, *out;

            ST_ASSERT(mine != NULL);
            st_fill_pattern(mine, b, seed(r, 0, k));
            drecv = dput(NULL, b * (size_t)p);
            if (inplace) {
                ST_ASSERT(t.memcpy_(drecv + (size_t)r * b, mine, b, 1) == 0);
            } else {
                dsend = dput(mine, b);
            }
            ST_ASSERT_OK(scomm_all_gather(inplace ? drecv + (size_t)r * b
                                                  : dsend,
                                          drecv, counts[k], SCOMM_INT32,
                                          comm));
            expect_path(comm, 1, 0);
            out = dget(drecv, b * (size_t)p);
            for (q = 0; q < p; q++) {
                check_block(out + (size_t)q * b, b, seed(q, 0, k),
                            "all_gather", r);
            }
            ST_ASSERT_EQ((unsigned char)out[b * (size_t)p], 0x5a);
            free(out);
            free(mine);
            t.free_(dsend);
            t.free_(drecv);
        }
    }
}

static void broadcast(scomm_comm_t *comm)
{
    int r = scomm_rank(comm), p = scomm_size(comm), root;
    size_t k, b;
    char *d, *h, *out;

    for (k = 0; k < NELEM(counts); k++) {
        b = counts[k];
        /* one buffer for every root: the cache serves the later calls */
        h = malloc(b);
        ST_ASSERT(h != NULL);
        d = dput(NULL, b);
        for (root = 0; root < p; root++) {
            if (r == root) {
                st_fill_pattern(h, b, seed(root, 1, k));
                ST_ASSERT(t.memcpy_(d, h, b, 1) == 0);
            }
            ST_ASSERT_OK(scomm_broadcast(d, counts[k], SCOMM_UINT8, root,
                                         comm));
            expect_path(comm, 1, root == p - 1);
            out = dget(d, b);
            check_block(out, b, seed(root, 1, k), "broadcast", r);
            ST_ASSERT_EQ((unsigned char)out[b], 0x5a);
            free(out);
        }
        free(h);
        t.free_(d);
    }
}

static void all_to_all(scomm_comm_t *comm)
{
    int r = scomm_rank(comm), p = scomm_size(comm), q, inplace;
    size_t k, b;

    for (k = 0; k < NELEM(counts); k++) {
        b = counts[k] * 8;
        for (inplace = 0; inplace < 2; inplace++) {
            char *h = malloc(b * (size_t)p), *ds, *dr, *out;

            ST_ASSERT(h != NULL);
            for (q = 0; q < p; q++) {
                st_fill_pattern(h + (size_t)q * b, b, seed(r, q + 2, k));
            }
            ds = dput(h, b * (size_t)p);
            dr = inplace ? ds : dput(NULL, b * (size_t)p);
            ST_ASSERT_OK(scomm_all_to_all(ds, dr, counts[k], SCOMM_INT64,
                                          comm));
            expect_path(comm, !inplace, 0);
            out = dget(dr, b * (size_t)p);
            for (q = 0; q < p; q++) {
                check_block(out + (size_t)q * b, b, seed(q, r + 2, k),
                            "all_to_all", r);
            }
            ST_ASSERT_EQ((unsigned char)out[b * (size_t)p], 0x5a);
            free(out);
            free(h);
            if (!inplace) {
                t.free_(dr);
            }
            t.free_(ds);
        }
    }
}

/* A forced algorithm runs as asked: staged, through it. */
static void forced(scomm_comm_t *comm)
{
    scomm_coll_record_t rec;
    int p = scomm_size(comm);
    char *d = dput(NULL, 64 * (size_t)p);

    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLGATHER, "ring"));
    ST_ASSERT_OK(scomm_all_gather(d + 64 * (size_t)scomm_rank(comm), d, 16,
                                  SCOMM_INT32, comm));
    ST_ASSERT_OK(scomm_last_selection(comm, &rec));
    ST_ASSERT(strncmp(rec.reason, "path staged", 11) == 0);
    ST_ASSERT(strcmp(rec.algo, "ring") == 0);
    ST_ASSERT_OK(scomm_coll_force_algo(SCOMM_COLL_ALLGATHER, NULL));
    t.free_(d);
}

/* Counts that differ between ranks: every rank's error, nobody reads past
 * a peer's buffer, and the communicator goes on (IPC mode: the records
 * carry the counts). */
static void mismatch(scomm_comm_t *comm)
{
    int p = scomm_size(comm), r = scomm_rank(comm);
    char *s = dput(NULL, 64), *d = dput(NULL, 64 * (size_t)p);

    ST_ASSERT_STATUS(scomm_all_gather(s, d, (r == 0) ? 16 : 8, SCOMM_INT32,
                                      comm),
                     SCOMM_ERR_MISMATCH);
    ST_ASSERT(strstr(scomm_last_error(), "mismatch") != NULL);
    ST_ASSERT_OK(scomm_all_gather(s, d, 16, SCOMM_INT32, comm));
    t.free_(s);
    t.free_(d);
}

/* Every rank sends to the next and receives from the one before: even
 * ranks send first; between IPC collectives on the same buffers'
 * allocator. */
static void send_recv(scomm_comm_t *comm)
{
    static const size_t sizes[] = {0, 1, 4097, 8192, 8193, 65537,
                                   (1u << 20) + 3};
    int r = scomm_rank(comm), p = scomm_size(comm);
    int to = (r + 1) % p, from = (r + p - 1) % p, first;
    size_t k, n;

    for (k = 0; k < NELEM(sizes); k++) {
        char *h = malloc(sizes[k] + 1), *ds, *dr, *out;

        ST_ASSERT(h != NULL);
        n = sizes[k];
        st_fill_pattern(h, n, seed(r, 7, k));
        ds = dput(h, n);
        /* a receive buffer larger than the message: the rest untouched */
        dr = dput(NULL, n + 16);
        for (first = 0; first < 2; first++) {
            if ((r % 2 == 0) == (first == 0)) {
                ST_ASSERT_OK(scomm_send(ds, n, SCOMM_UINT8, to, (int)k,
                                        comm));
            } else {
                ST_ASSERT_OK(scomm_recv(dr, n + 16, SCOMM_UINT8, from,
                                        (int)k, comm));
            }
        }
        out = dget(dr, n + 16);
        check_block(out, n, seed(from, 7, k), "send/recv", r);
        for (size_t i = n; i <= n + 16; i++) {
            ST_ASSERT_EQ((unsigned char)out[i], 0x5a);
        }
        free(out);
        free(h);
        t.free_(ds);
        t.free_(dr);
    }
    /* a receive posted late */
    if (r == 0) {
        char *d = dput(NULL, 100000);

        ST_ASSERT_OK(scomm_send(d, 100000, SCOMM_UINT8, p - 1, 99, comm));
        t.free_(d);
    } else if (r == p - 1) {
        char *d = dput(NULL, 100000);

        usleep(200000);
        ST_ASSERT_OK(scomm_recv(d, 100000, SCOMM_UINT8, 0, 99, comm));
        t.free_(d);
    }
    ST_ASSERT_OK(scomm_barrier(comm));
}

static int run(int rank, int size, void *arg)
{
    scomm_comm_t *comm = NULL;
    int64_t opens;

    (void)arg;
    load();
    if ((t.expect == EXPECT_OPENFAIL) && (rank == size - 1)) {
        setenv("FAKE_IPC_OPEN_FAIL", "1", 1);
    }
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_EQ(scomm_local_size(comm), size);
    ST_ASSERT_OK(scomm_mem_kind_hint(comm, SCOMM_MEM_CUDA));
    all_gather(comm);
    broadcast(comm);
    all_to_all(comm);
    forced(comm);
    if (t.expect == EXPECT_IPC) {
        mismatch(comm);
    }
    send_recv(comm);
    opens = t.stat("ipc_opens");
    if (t.expect == EXPECT_IPC) {
        ST_ASSERT(opens > 0);
    } else if ((t.expect == EXPECT_STAGED) || (rank == size - 1)) {
        ST_ASSERT_EQ(opens, 0);
    }
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

int main(int argc, char **argv)
{
    return st_main_ranks(argc, argv, run, NULL);
}
