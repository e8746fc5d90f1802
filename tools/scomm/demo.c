/*
 * demo.c - `scomm demo`: the job `make demo` runs under `scomm launch`.
 * Every rank takes part; rank 0 prints one table. Each row is verified
 * against data computed independently on the receiving side.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "scomm.h"

typedef struct demo_row {
    char   test[32];
    size_t bytes;
    double usec;
    double gbps;
    int    ok;
    char   algo[32];
} demo_row_t;

static int demo_check(scomm_status_t s, const char *what, int rank)
{
    if (s != SCOMM_OK) {
        fprintf(stderr, "rank %d: %s failed: %s: %s\n", rank, what,
                scomm_status_name(s), scomm_last_error());
        return 1;
    }
    return 0;
}

/* Ping-pong between ranks 0 and 1; one-way time in microseconds. */
static int demo_pingpong(scomm_comm_t *comm, size_t bytes, int iters,
                         demo_row_t *row)
{
    int rank = scomm_rank(comm);
    char *buf = malloc(bytes > 0 ? bytes : 1);
    double t0 = 0;
    int i, ok = 1, err = 0;

    if (buf == NULL) {
        return 1;
    }
    scomm_cli_fill(buf, bytes, 77);
    for (i = -10; (i < iters) && !err; i++) {
        if (i == 0) {
            t0 = scomm_cli_now();
        }
        if (rank == 0) {
            err |= demo_check(scomm_send(buf, bytes, SCOMM_UINT8, 1, 1, comm),
                              "ping send", rank);
            err |= demo_check(scomm_recv(buf, bytes, SCOMM_UINT8, 1, 1, comm),
                              "ping recv", rank);
        } else if (rank == 1) {
            err |= demo_check(scomm_recv(buf, bytes, SCOMM_UINT8, 0, 1, comm),
                              "pong recv", rank);
            err |= demo_check(scomm_send(buf, bytes, SCOMM_UINT8, 0, 1, comm),
                              "pong send", rank);
        }
    }
    if (rank <= 1) {
        ok = (scomm_cli_check(buf, bytes, 77) == (size_t)-1);
    }
    snprintf(row->test, sizeof(row->test), "ping-pong 0<->1");
    row->bytes = bytes;
    row->usec  = (scomm_cli_now() - t0) * 1e6 / (2.0 * iters);
    row->gbps  = (row->usec > 0) ? (double)bytes / (row->usec * 1e3) : 0;
    row->ok    = ok && !err;
    free(buf);
    return err;
}

/* Every rank sends to rank+1 and receives from rank-1, data verified. */
static int demo_ring(scomm_comm_t *comm, size_t bytes, int iters,
                     demo_row_t *row)
{
    int rank = scomm_rank(comm), size = scomm_size(comm);
    int right = (rank + 1) % size, left = (rank - 1 + size) % size;
    char *sbuf = malloc(bytes > 0 ? bytes : 1);
    char *rbuf = malloc(bytes > 0 ? bytes : 1);
    scomm_req_t *reqs[2];
    double t0 = 0;
    int i, err = 0, ok = 1;

    if ((sbuf == NULL) || (rbuf == NULL)) {
        free(sbuf);
        free(rbuf);
        return 1;
    }
    scomm_cli_fill(sbuf, bytes, 1000 + (uint64_t)rank);
    for (i = -2; (i < iters) && !err; i++) {
        if (i == 0) {
            err |= demo_check(scomm_barrier(comm), "barrier", rank);
            t0 = scomm_cli_now();
        }
        memset(rbuf, 0, bytes);
        err |= demo_check(scomm_irecv(rbuf, bytes, SCOMM_UINT8, left, 2, comm,
                                      &reqs[0]), "ring irecv", rank);
        err |= demo_check(scomm_isend(sbuf, bytes, SCOMM_UINT8, right, 2,
                                      comm, &reqs[1]), "ring isend", rank);
        if (!err) {
            err |= demo_check(scomm_wait_all(2, reqs), "ring wait", rank);
        }
        if (!err && (scomm_cli_check(rbuf, bytes, 1000 + (uint64_t)left) !=
                     (size_t)-1)) {
            ok = 0;
        }
    }
    snprintf(row->test, sizeof(row->test), "ring send/recv");
    row->bytes = bytes;
    row->usec  = (scomm_cli_now() - t0) * 1e6 / iters;
    row->gbps  = (row->usec > 0) ? (double)bytes / (row->usec * 1e3) : 0;
    row->ok    = ok && !err;
    free(sbuf);
    free(rbuf);
    return err;
}

/* Input element i of rank r: small integers, so float sums are exact and
 * every rank can compute every other rank's input. */
static float demo_in(int r, size_t i)
{
    return (float)((int)((i * 7 + (size_t)r * 13) % 31) - 15);
}

/* Run one collective `iters` times on `count` floats per rank and verify
 * the last result against a reference computed here. */
static int demo_coll(scomm_comm_t *comm, const char *name, size_t count,
                     int iters, demo_row_t *row)
{
    int rank = scomm_rank(comm), size = scomm_size(comm), root = size - 1;
    size_t n = count * (size_t)size, i, bytes = count * sizeof(float);
    float *in = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    scomm_coll_record_t rec;
    scomm_status_t s = SCOMM_OK;
    double t0 = 0, want;
    int it, r, ok = 1;

    if ((in == NULL) || (out == NULL)) {
        free(in);
        free(out);
        return 1;
    }
    for (i = 0; i < n; i++) {
        in[i] = demo_in(rank, i);
    }
    for (it = -1; (it < iters) && (s == SCOMM_OK); it++) {
        if (it == 0) {
            s  = scomm_barrier(comm);
            t0 = scomm_cli_now();
        }
        memset(out, 0, n * sizeof(float));
        if (strcmp(name, "all_reduce") == 0) {
            s = scomm_all_reduce(in, out, count, SCOMM_FLOAT32, SCOMM_SUM,
                                 comm);
        } else if (strcmp(name, "all_gather") == 0) {
            s = scomm_all_gather(in, out, count, SCOMM_FLOAT32, comm);
        } else if (strcmp(name, "reduce_scatter") == 0) {
            s = scomm_reduce_scatter(in, out, count, SCOMM_FLOAT32, SCOMM_MAX,
                                     comm);
        } else if (strcmp(name, "broadcast") == 0) {
            memcpy(out, in, bytes);
            s = scomm_broadcast(out, count, SCOMM_FLOAT32, root, comm);
        } else if (strcmp(name, "reduce") == 0) {
            s = scomm_reduce(in, out, count, SCOMM_FLOAT32, SCOMM_SUM, root,
                             comm);
        } else if (strcmp(name, "all_to_all") == 0) {
            s = scomm_all_to_all(in, out, count, SCOMM_FLOAT32, comm);
        } else if (strcmp(name, "gather") == 0) {
            s = scomm_gather(in, out, count, SCOMM_FLOAT32, root, comm);
        } else if (strcmp(name, "scatter") == 0) {
            s = scomm_scatter(in, out, count, SCOMM_FLOAT32, root, comm);
        }
    }
    row->usec = (scomm_cli_now() - t0) * 1e6 / iters;
    if (s != SCOMM_OK) {
        demo_check(s, name, rank);
        ok = 0;
    }
    for (i = 0; ok && (i < count); i++) {
        if (strcmp(name, "all_reduce") == 0) {
            for (want = 0, r = 0; r < size; r++) {
                want += demo_in(r, i);
            }
            ok = (out[i] == (float)want);
        } else if (strcmp(name, "reduce_scatter") == 0) {
            for (want = -1e30, r = 0; r < size; r++) {
                want = (demo_in(r, (size_t)rank * count + i) > want)
                           ? demo_in(r, (size_t)rank * count + i) : want;
            }
            ok = (out[i] == (float)want);
        } else if (strcmp(name, "broadcast") == 0) {
            ok = (out[i] == demo_in(root, i));
        } else if ((strcmp(name, "reduce") == 0) && (rank == root)) {
            for (want = 0, r = 0; r < size; r++) {
                want += demo_in(r, i);
            }
            ok = (out[i] == (float)want);
        } else if (strcmp(name, "scatter") == 0) {
            ok = (out[i] == demo_in(root, (size_t)rank * count + i));
        }
        for (r = 0; ok && (r < size); r++) {
            if (strcmp(name, "all_gather") == 0) {
                ok = (out[(size_t)r * count + i] == demo_in(r, i));
            } else if (strcmp(name, "all_to_all") == 0) {
                ok = (out[(size_t)r * count + i] ==
                      demo_in(r, (size_t)rank * count + i));
            } else if ((strcmp(name, "gather") == 0) && (rank == root)) {
                ok = (out[(size_t)r * count + i] == demo_in(r, i));
            }
        }
    }
    snprintf(row->test, sizeof(row->test), "%s", name);
    row->bytes = bytes;
    row->gbps  = (row->usec > 0) ? (double)bytes / (row->usec * 1e3) : 0;
    row->ok    = ok;
    if (scomm_last_selection(comm, &rec) == SCOMM_OK) {
        snprintf(row->algo, sizeof(row->algo), "%s", rec.algo);
    }
    free(in);
    free(out);
    return (s == SCOMM_OK) ? 0 : 1;
}

static void demo_usage(FILE *f)
{
    fprintf(f,
            "usage: scomm launch -n N -- scomm demo\n"
            "Every rank takes part: barrier, ping-pong between ranks 0 and "
            "1, a ring\n"
            "send/recv and every collective at several sizes, each result "
            "verified on\n"
            "the receiving side; rank 0 prints one table. Exit 0 when all "
            "verified.\n"
            "  -h, --help   this text\n");
}

int scomm_cli_demo(int argc, char **argv)
{
    static const char *const colls[] = {
        "all_reduce", "all_gather", "reduce_scatter", "broadcast", "reduce",
        "all_to_all", "gather", "scatter"
    };
    static const size_t ccounts[] = {1, 1021, 1u << 18};
    size_t k;
    static const size_t sizes[] = {0, 1, 4096, 1u << 20, 64u << 20};
    demo_row_t rows[64];
    int nrows = 0, err = 0, rank, size, allok = 1, i, j, iters;
    scomm_comm_t *comm = NULL;
    scomm_status_t s;
    double t0;
    char sz[32];
    int32_t flag, all;
    const scomm_cli_cmd_t cmd = {"demo", demo_usage, NULL, 0, 0, 0};
    int rc, first;

    rc = scomm_cli_parse(&cmd, argc, argv, &first);
    if (rc >= 0) {
        return rc;
    }
    s = scomm_init_from_env(&comm);
    if (s != SCOMM_OK) {
        fprintf(stderr, "scomm demo: %s: %s\n(run it as: scomm launch -n 4 "
                "-- scomm demo)\n", scomm_status_name(s), scomm_last_error());
        return 1;
    }
    rank = scomm_rank(comm);
    size = scomm_size(comm);
    memset(rows, 0, sizeof(rows));

    t0 = scomm_cli_now();
    for (i = 0; (i < 100) && !err; i++) {
        err |= demo_check(scomm_barrier(comm), "barrier", rank);
    }
    snprintf(rows[nrows].test, sizeof(rows[nrows].test), "barrier");
    rows[nrows].bytes = 0;
    rows[nrows].usec  = (scomm_cli_now() - t0) * 1e6 / 100;
    rows[nrows].gbps  = 0;
    rows[nrows].ok    = !err;
    nrows++;

    if ((size >= 2) && !err) {
        err |= demo_pingpong(comm, 8, 2000, &rows[nrows++]);
        err |= demo_pingpong(comm, 1u << 20, 50, &rows[nrows++]);
    }
    for (j = 0; (j < (int)(sizeof(sizes) / sizeof(sizes[0]))) && !err; j++) {
        iters = (sizes[j] >= (16u << 20)) ? 3 : 20;
        err |= demo_ring(comm, sizes[j], iters, &rows[nrows++]);
    }

    for (j = 0; (j < (int)(sizeof(colls) / sizeof(colls[0]))) && !err;
         j++) {
        for (k = 0; (k < sizeof(ccounts) / sizeof(ccounts[0])) && !err;
             k++) {
            memset(&rows[nrows], 0, sizeof(rows[nrows]));
            err |= demo_coll(comm, colls[j], ccounts[k],
                             (ccounts[k] > 4096) ? 5 : 50, &rows[nrows]);
            nrows++;
        }
    }

    /* Agree on the verdict: every rank's rows must be ok. */
    for (i = 0; i < nrows; i++) {
        allok &= rows[i].ok;
    }
    flag = allok && !err;
    if (!err) {
        all = flag;
        /* Gather verdicts on rank 0 with p2p (collectives come later). */
        if (rank == 0) {
            for (i = 1; i < size; i++) {
                int32_t v = 0;

                err |= demo_check(scomm_recv(&v, 1, SCOMM_INT32, i, 9, comm),
                                  "verdict recv", rank);
                all &= v;
            }
        } else {
            err |= demo_check(scomm_send(&flag, 1, SCOMM_INT32, 0, 9, comm),
                              "verdict send", rank);
        }
        flag = all;
    }
    if (rank == 0) {
        printf("scomm demo: %d ranks (%d on this host), transport to rank 1: "
               "%s\n\n", size, scomm_local_size(comm),
               (size > 1) ? scomm_peer_transport(comm, 1) : "none");
        printf("%-18s %10s %12s %10s  %-20s %s\n", "test", "bytes",
               "time_us", "GB/s", "algorithm", "check");
        printf("%-18s %10s %12s %10s  %-20s %s\n", "------------------",
               "----------", "------------", "----------",
               "--------------------", "-----");
        for (i = 0; i < nrows; i++) {
            scomm_cli_fmt_size(sz, sizeof(sz), rows[i].bytes);
            printf("%-18s %10s %12.2f %10.2f  %-20s %s\n", rows[i].test, sz,
                   rows[i].usec, rows[i].gbps,
                   (rows[i].algo[0] != '\0') ? rows[i].algo : "-",
                   rows[i].ok ? "ok" : "WRONG");
        }
        printf("\nresult: %s\n", (flag && !err) ? "all verified" : "FAILED");
    }
    scomm_comm_destroy(comm);
    return (flag && !err) ? 0 : 1;
}
