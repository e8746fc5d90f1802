/*
 * bench_coll_time.c - the timing engine of `scomm bench`: the buffers of
 * one (op, size), one call, the calibration and the measurement of one
 * size, measured the way nccl-tests measures.
 *
 * Sizes (nccl-tests): all_reduce, broadcast, reduce: the buffer;
 * all_gather, gather: the total output; reduce_scatter, scatter: the total
 * input; all_to_all: the total input of one rank. A requested size is
 * rounded down to a whole number of elements per rank (at least one).
 *
 * Timing, per size: warmup calls, then either -n calls or, by default, a
 * calibration batch grown until it lasts >= min(target/5, 50 ms) and then
 * about --target seconds of calls (rank 0 decides, every rank follows).
 * Every call is timestamped on every rank; the per-call time is the
 * maximum over ranks (reduced to rank 0 after the size), and
 *   t_mean   = the slowest rank's total / iterations (nccl-tests "time"),
 *   t_median, t_min, t_max of the per-call maxima,
 *   algbw    = bytes / t_mean (1 GB = 1e9 B),
 *   busbw    = algbw * factor: all_reduce 2(n-1)/n; all_gather,
 *              reduce_scatter, all_to_all, gather, scatter (n-1)/n;
 *              broadcast, reduce 1.
 * Without --check the calls run back to back. With --check every timed
 * call's output is first poisoned (alternating two byte patterns), the
 * ranks meet in a barrier, the call alone is timed, and every element of
 * the output is compared with its reference (bench_coll_check.c).
 * --device: the calls take device copies and each is timed with a stream
 * sync (bench_coll_dev.c).
 *
 * Invariants:
 *  1. Every rank runs the same number of calls of a size: the iteration
 *     count is rank 0's, broadcast during calibration.
 *  2. Nothing measured is read before the reductions of the times: the
 *     algorithm selection is read first, since they overwrite it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_coll.h"
#include "cli.h"

#define BC_POISON_A 0xa5
#define BC_POISON_B 0x5a

static double bc_busfactor(int op, int n)
{
    double p = (double)n;

    switch (op) {
    case BC_ALLREDUCE:
        return 2.0 * (p - 1.0) / p;
    case BC_ALLGATHER:
    case BC_REDUCESCATTER:
    case BC_ALLTOALL:
    case BC_GATHER:
    case BC_SCATTER:
        return (p - 1.0) / p;
    case BC_BARRIER:
        return 0.0;
    default:
        return 1.0;
    }
}

/* ---- geometry and one call ----------------------------------------------- */

void bc_geometry(const bc_ctx_t *c, int op, size_t req, bc_geo_t *g)
{
    size_t n = (size_t)c->size, es = c->esize;

    memset(g, 0, sizeof(*g));
    switch (bc_ops[op].geo) {
    case BC_GEO_VECTOR:
        g->count = (req / es > 0) ? req / es : 1;
        g->bytes = g->count * es;
        g->sbytes = g->rbytes = g->blk = g->bytes;
        break;
    case BC_GEO_OUT_TOTAL:
    case BC_GEO_IN_TOTAL:
        g->count = (req / (es * n) > 0) ? req / (es * n) : 1;
        g->blk   = g->count * es;
        g->bytes = g->blk * n;
        if (op == BC_ALLTOALL) {
            g->sbytes = g->rbytes = g->bytes;
        } else if (bc_ops[op].geo == BC_GEO_OUT_TOTAL) {
            g->sbytes = g->blk;
            g->rbytes = g->bytes;
        } else {
            g->sbytes = g->bytes;
            g->rbytes = g->blk;
        }
        break;
    default:
        break;
    }
}

static scomm_status_t bc_call_on(bc_ctx_t *c, int op, size_t count,
                                  void *sbuf, void *rbuf)
{
    const bc_opts_t *o = c->o;
    int root = (c->rank == o->root);

    switch (op) {
    case BC_ALLREDUCE:
        return scomm_all_reduce(sbuf, rbuf, count, o->dtype, o->redop,
                                c->comm);
    case BC_ALLGATHER:
        return scomm_all_gather(sbuf, rbuf, count, o->dtype, c->comm);
    case BC_REDUCESCATTER:
        return scomm_reduce_scatter(sbuf, rbuf, count, o->dtype,
                                    o->redop, c->comm);
    case BC_BROADCAST:
        return scomm_broadcast(rbuf, count, o->dtype, o->root, c->comm);
    case BC_REDUCE:
        return scomm_reduce(sbuf, root ? rbuf : NULL, count, o->dtype,
                            o->redop, o->root, c->comm);
    case BC_ALLTOALL:
        return scomm_all_to_all(sbuf, rbuf, count, o->dtype, c->comm);
    case BC_GATHER:
        return scomm_gather(sbuf, root ? rbuf : NULL, count, o->dtype,
                            o->root, c->comm);
    case BC_SCATTER:
        return scomm_scatter(root ? sbuf : NULL, rbuf, count, o->dtype,
                             o->root, c->comm);
    default:
        return scomm_barrier(c->comm);
    }
}

/* One call, on the device buffers under --device (bench_coll_dev.c). */
static scomm_status_t bc_call(bc_ctx_t *c, int op, size_t count)
{
    scomm_status_t s;

    if (!c->o->device) {
        return bc_call_on(c, op, count, c->sbuf, c->rbuf);
    }
    s = bc_dev_begin(c);
    if (s == SCOMM_OK) {
        s = bc_call_on(c, op, count, c->dsbuf, c->drbuf);
    }
    return bc_dev_end(c, s);
}

/* ---- measuring one size -------------------------------------------------- */

static int bc_grow_times(bc_ctx_t *c, long n)
{
    if (n <= c->tcap) {
        return 0;
    }
    free(c->tl);
    free(c->tmax);
    c->tl   = malloc(sizeof(double) * (size_t)n);
    c->tmax = malloc(sizeof(double) * (size_t)n);
    c->tcap = (c->tl != NULL && c->tmax != NULL) ? n : 0;
    return (c->tcap == n) ? 0 : -1;
}

/* Iterations for about --target seconds (the same on every rank). */
static int bc_calibrate(bc_ctx_t *c, int op, size_t count, size_t bytes,
                        long *iters)
{
    double calib = (c->o->target / 5 < 0.05) ? c->o->target / 5 : 0.05;
    double msg[2], t0, grow, est;
    scomm_status_t s;
    long nb = 1, b, it;

    for (;;) {
        s = scomm_barrier(c->comm);
        t0 = scomm_cli_now();
        for (b = 0; (b < nb) && (s == SCOMM_OK); b++) {
            s = bc_call(c, op, count);
        }
        if (s != SCOMM_OK) {
            return bc_fail(c->comm, s, bc_ops[op].name);
        }
        msg[0] = scomm_cli_now() - t0;
        msg[1] = ((msg[0] >= calib) || (nb >= BC_MAX_ITERS)) ? 1.0 : 0.0;
        s = scomm_broadcast(msg, 2, SCOMM_FLOAT64, 0, c->comm);
        if (s != SCOMM_OK) {
            return bc_fail(c->comm, s, "calibration broadcast");
        }
        if (msg[1] != 0.0) {
            est = msg[0] / (double)nb;
            break;
        }
        grow = (msg[0] > 0) ? 1.5 * calib / msg[0] : 64;
        grow = (grow < 2) ? 2 : (grow > 64) ? 64 : grow;
        nb   = (long)((double)nb * grow);
        nb   = (nb > BC_MAX_ITERS) ? BC_MAX_ITERS : nb;
    }
    it = (long)(c->o->target / (est > 1e-9 ? est : 1e-9));
    if (it < BC_MIN_ITERS) {
        it = BC_MIN_ITERS;
    }
    if ((bytes >= (64u << 20)) && (it < 3)) {
        it = 3;
    }
    *iters = (it > BC_MAX_ITERS) ? BC_MAX_ITERS : it;
    return 0;
}

int bc_measure(bc_ctx_t *c, int op, size_t req, bc_result_t *res)
{
    const bc_opts_t *o = c->o;
    scomm_status_t s = SCOMM_OK;
    long long wrong = 0, wrong_all = 0;
    double t0, prev, tt, total;
    size_t vbytes;
    long iters, it;
    int i, warmup, poison;
    bc_geo_t g;
    time_t now;

    bc_geometry(c, op, req, &g);
    vbytes = bc_prepare(c, op, &g, &poison);
    if (o->device && (bc_dev_put(c, g.sbytes, g.rbytes) != 0)) {
        scomm_comm_abort(c->comm);
        return 1;
    }
    warmup = o->warmup;
    if (warmup < 0) {
        warmup = (g.bytes >= (64u << 20)) ? 2 : 5;
    }
    for (i = 0; (i < warmup) && (s == SCOMM_OK); i++) {
        s = bc_call(c, op, g.count);
    }
    if (s != SCOMM_OK) {
        return bc_fail(c->comm, s, bc_ops[op].name);
    }
    iters = o->iters;
    if ((iters <= 0) && (bc_calibrate(c, op, g.count, g.bytes, &iters) != 0)) {
        return 1;
    }
    if (bc_grow_times(c, iters + 1) != 0) {
        fprintf(stderr, "scomm bench: out of memory for %ld samples\n", iters);
        scomm_comm_abort(c->comm);
        return 1;
    }
    if (!o->check) {
        s = scomm_barrier(c->comm);
        t0 = prev = scomm_cli_now();
        for (it = 0; (it < iters) && (s == SCOMM_OK); it++) {
            s = bc_call(c, op, g.count);
            tt = scomm_cli_now();
            c->tl[it] = tt - prev;
            prev = tt;
        }
        total = prev - t0;
    } else {
        total = 0;
        for (it = 0; (it < iters) && (s == SCOMM_OK); it++) {
            if (poison && (vbytes > 0)) {
                memset(c->rbuf, (it & 1) ? BC_POISON_B : BC_POISON_A, vbytes);
                if (o->device && (bc_dev_put(c, 0, vbytes) != 0)) {
                    s = SCOMM_ERR_SYSTEM;
                    break;
                }
            }
            s = scomm_barrier(c->comm);
            if (s != SCOMM_OK) {
                break;
            }
            t0 = scomm_cli_now();
            s = bc_call(c, op, g.count);
            c->tl[it] = scomm_cli_now() - t0;
            total += c->tl[it];
            if (o->device && (s == SCOMM_OK) && (vbytes > 0) &&
                (bc_dev_get(c, vbytes) != 0)) {
                s = SCOMM_ERR_SYSTEM;
                break;
            }
            if (vbytes > 0) {
                wrong += bc_count_wrong(c->rbuf, c->ref, vbytes, c->esize);
            }
        }
    }
    if (s != SCOMM_OK) {
        return bc_fail(c->comm, s, bc_ops[op].name);
    }
    /* Read the selection before the reductions below overwrite it. */
    if (op == BC_BARRIER) {
        memset(&res->sel, 0, sizeof(res->sel));
        snprintf(res->sel.algo, sizeof(res->sel.algo), "dissemination");
        snprintf(res->sel.rule_id, sizeof(res->sel.rule_id),
                 "barrier.dissemination");
        snprintf(res->sel.reason, sizeof(res->sel.reason),
                 "scomm_barrier has one algorithm (ceil(log2 %d) rounds of "
                 "zero-byte messages) and records no selection", c->size);
    } else {
        s = scomm_last_selection(c->comm, &res->sel);
        if (s != SCOMM_OK) {
            return bc_fail(c->comm, s, "scomm_last_selection");
        }
    }
    c->tl[iters] = total;
    s = scomm_reduce(c->tl, (c->rank == 0) ? c->tmax : NULL,
                     (size_t)iters + 1, SCOMM_FLOAT64, SCOMM_MAX, 0, c->comm);
    if (s == SCOMM_OK) {
        s = scomm_reduce(&wrong, &wrong_all, 1, SCOMM_INT64, SCOMM_SUM, 0,
                         c->comm);
    }
    if (s != SCOMM_OK) {
        return bc_fail(c->comm, s, "gathering the times");
    }
    res->op     = op;
    res->bytes  = g.bytes;
    res->count  = g.count;
    res->iters  = iters;
    res->warmup = warmup;
    res->wrong  = o->check ? wrong_all : -1;
    now = time(NULL);
    strftime(res->timestamp, sizeof(res->timestamp), "%Y-%m-%dT%H:%M:%SZ",
             gmtime(&now));
    if (c->rank == 0) {
        res->t_mean = c->tmax[iters] / (double)iters;
        qsort(c->tmax, (size_t)iters, sizeof(double), scomm_cli_cmp_double);
        res->t_med = scomm_cli_median_sorted(c->tmax, (size_t)iters);
        res->t_min = c->tmax[0];
        res->t_max = c->tmax[iters - 1];
        res->algbw = (res->t_mean > 0) ? (double)g.bytes / res->t_mean / 1e9
                                       : 0.0;
        res->busbw = res->algbw * bc_busfactor(op, c->size);
    }
    return 0;
}
