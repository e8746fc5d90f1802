/*
 * bench_coll.h - `scomm bench <op|all>`: nccl-tests-style benchmark of the
 * collectives (time per call with the slowest rank counting, algbw, busbw),
 * with per-call verification, JSON/CSV/Markdown records and gnuplot plots.
 * The same measurements as nccl-tests and ../shared/anchors/mpi_coll_bench.c,
 * so the numbers compare one to one.
 *
 * The benchmark is five files around the types below:
 *   bench_coll.c         options, the run over ops and sizes, the entry
 *   bench_coll_time.c    timing engine: buffer geometry, one call, the
 *                        calibration, measuring one size
 *   bench_coll_check.c   deterministic inputs and the exact references
 *                        that --check compares every output element with
 *   bench_coll_report.c  the table on stdout and the JSON, CSV and Markdown
 *                        records
 *   bench_coll_plot.c    busbw and latency curves with gnuplot, peers' CSV
 *                        files overlaid
 *   bench_coll_dev.c     --device: the buffers in device memory
 *
 * Design notes:
 *  1. Rank 0 alone prints, keeps records and writes files; every other
 *     rank takes part in the calls and the reductions of the times.
 *  2. Every rank makes the same decisions (sizes, iterations, verdict):
 *     what rank 0 decides is broadcast, so every exit code agrees.
 *  3. The record files' columns are a format other tools read (the
 *     bench/ scripts, --peer-csv, docs/perf): bc_csv_header and the JSON
 *     keys only ever grow at the end.
 */
#ifndef SCOMM_TOOLS_BENCH_COLL_H
#define SCOMM_TOOLS_BENCH_COLL_H

#include <stdio.h>

#include "scomm.h"

/*
 * Run the collectives benchmark. argv[0] is "bench", argv[1] the operation
 * (a name, a comma list, or "all"), the rest options. Returns the exit
 * code: 0 success, 1 failure or wrong results under --check, 2 usage.
 */
int scomm_cli_bench_coll(int argc, char **argv);

/* Print the collectives benchmark's usage text. */
void scomm_cli_bench_coll_usage(FILE *f);

/* ---- what the pieces share ----------------------------------------------- */

#define BC_MAX_SIZES   64
#define BC_MAX_PEERS   16
#define BC_MAX_ITERS   1000000L
#define BC_MAX_BYTES   (64ull << 30) /* largest size of a sweep */
#define BC_MIN_ITERS   5

typedef enum {
    BC_ALLREDUCE = 0,
    BC_ALLGATHER,
    BC_REDUCESCATTER,
    BC_BROADCAST,
    BC_REDUCE,
    BC_ALLTOALL,
    BC_GATHER,
    BC_SCATTER,
    BC_BARRIER,
    BC_NOPS
} bc_op_t;

/* Where the size of an op's buffers comes from (see bc_geometry). */
enum { BC_GEO_VECTOR, BC_GEO_OUT_TOTAL, BC_GEO_IN_TOTAL, BC_GEO_NONE };

typedef struct bc_opinfo {
    const char *name;   /* "all_reduce": ours, and the CSV op_type */
    const char *alias;  /* the anchors' name, or NULL */
    int         coll;   /* scomm_coll_op_t, or -1 (barrier) */
    int         reduces;
    int         rooted;
    int         geo;
} bc_opinfo_t;

/* The operations, indexed by bc_op_t (bench_coll.c). */
extern const bc_opinfo_t bc_ops[BC_NOPS];

typedef struct bc_opts {
    int            ops[BC_NOPS];
    int            nops;
    size_t         sizes[BC_MAX_SIZES];
    int            nsizes;
    scomm_dtype_t  dtype;
    scomm_redop_t  redop;
    int            root;
    int            warmup;      /* -1: default (5, 2 from 64 MiB) */
    long           iters;       /* 0: calibrate to target */
    double         target;
    int            check;
    const char    *algo;
    const char    *out;         /* NULL: no per-op files */
    const char    *csv, *json, *md;
    int            plot;
    const char    *peer_csv[BC_MAX_PEERS];
    int            npeer;
    int            quiet;
    int            device;      /* --device: buffers in device memory */
} bc_opts_t;

typedef struct bc_result {
    int                 op;
    size_t              bytes, count;
    long                iters;
    int                 warmup;
    double              t_mean, t_med, t_min, t_max; /* seconds */
    double              algbw, busbw;                /* GB/s */
    long long           wrong;                       /* -1: not checked */
    scomm_coll_record_t sel;
    char                timestamp[32];
} bc_result_t;

typedef struct bc_ctx {
    scomm_comm_t    *comm;
    int              rank, size;
    const bc_opts_t *o;
    size_t           esize;
    const char      *transport;
    unsigned char   *sbuf, *rbuf, *ref;
    void            *dsbuf, *drbuf; /* --device: what the calls use */
    double          *tl, *tmax;
    long             tcap;
    int              tty;
    int              file_err;  /* rank 0: a file could not be written */
    bc_result_t     *res;       /* rank 0: every record of the run */
    int              nres, capres;
    char             stamp[32]; /* YYYYmmdd_HHMMSS of the run */
} bc_ctx_t;

typedef struct bc_geo {
    size_t count;   /* the count argument of the call */
    size_t bytes;   /* nccl-tests size */
    size_t sbytes;  /* this rank's send buffer */
    size_t rbytes;  /* this rank's receive buffer */
    size_t blk;     /* bytes one rank contributes per block */
} bc_geo_t;

/* bench_coll.c */
int bc_op_find(const char *name, size_t len);
int bc_fail(scomm_comm_t *comm, scomm_status_t s, const char *what);

/* bench_coll_time.c */
void bc_geometry(const bc_ctx_t *c, int op, size_t req, bc_geo_t *g);
int bc_measure(bc_ctx_t *c, int op, size_t req, bc_result_t *res);

/* bench_coll_check.c */
size_t bc_prepare(bc_ctx_t *c, int op, const bc_geo_t *g, int *poison);
long long bc_count_wrong(const unsigned char *got, const unsigned char *ref,
                         size_t bytes, size_t es);

/* bench_coll_dev.c (--device) */
int bc_dev_open(void);
void *bc_dev_alloc(size_t n);
void bc_dev_free(void *p);
/* The prefix of the messages ("scomm bench: --device" by default). */
void bc_dev_name(const char *who);
/* cudaMemcpy of n bytes (kind 1 host -> device, 2 device -> host, 3 device
 * -> device), then the default stream synchronised: 0, or 1 with a
 * message. */
int bc_dev_memcpy(void *d, const void *s, size_t n, int kind);
int bc_dev_put(bc_ctx_t *c, size_t sbytes, size_t rbytes);
int bc_dev_get(bc_ctx_t *c, size_t rbytes);
scomm_status_t bc_dev_begin(bc_ctx_t *c);
scomm_status_t bc_dev_end(bc_ctx_t *c, scomm_status_t s);

/* bench_coll_report.c */
typedef void (*bc_writer_t)(FILE *, const bc_ctx_t *, const bc_result_t *,
                            int);

void bc_write_csv(FILE *f, const bc_ctx_t *c, const bc_result_t *r, int n);
void bc_write_json(FILE *f, const bc_ctx_t *c, const bc_result_t *r, int n);
void bc_write_md(FILE *f, const bc_ctx_t *c, const bc_result_t *r, int n);
int bc_write_file(const char *path, bc_writer_t w, const bc_ctx_t *c,
                  const bc_result_t *r, int n);
int bc_write_op_files(const bc_ctx_t *c, const bc_result_t *r, int n);
void bc_print_header(const bc_ctx_t *c, int op);
void bc_print_row(const bc_ctx_t *c, const bc_result_t *r);
int bc_mkdirs(const char *path);

/* bench_coll_plot.c */
int bc_plot(const bc_ctx_t *c);

#endif /* SCOMM_TOOLS_BENCH_COLL_H */
