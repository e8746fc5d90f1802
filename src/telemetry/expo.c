/*
 * expo.c - exposition: the Prometheus text format (scomm_metrics_text) and
 * the HTTP /metrics endpoint (libmicrohttpd) on SCOMM_METRICS_PORT /
 * SCOMM_METRICS_ADDR. The metric names, labels and buckets are listed in
 * docs/telemetry.md.
 *
 * Server lifecycle (one per process):
 *
 *   first scomm_init, SCOMM_METRICS_PORT set -> scomm_tm_http_start()
 *       binds ADDR (default 127.0.0.1) : PORT + local rank (PORT 0: a free
 *       port, logged; scomm_metrics_port() tells it)
 *   last world destroyed -> scomm_tm_http_stop()
 *
 * Invariants:
 *  1. The text is built into one buffer that grows by doubling up to
 *     SCOMM_EXPO_MAX bytes; past that the call fails with
 *     SCOMM_ERR_NO_MEMORY rather than send a truncated exposition.
 *  2. Building holds only the registry lock (never a world lock) and reads
 *     counters with relaxed atomic loads; a histogram's _count is the sum
 *     of the bucket values read, so it always equals the +Inf bucket.
 *  3. The server thread belongs to libmicrohttpd; a connection idle for
 *     SCOMM_EXPO_CONN_TIMEOUT seconds is closed, so nothing waits forever.
 *     scomm_tm_http_lock guards the daemon pointer and the bound port.
 *  4. Built without libmicrohttpd (SCOMM_HAVE_MHD undefined), the text
 *     format still works; SCOMM_METRICS_PORT makes scomm_init fail with
 *     SCOMM_ERR_UNSUPPORTED naming the package (core/features.h) rather
 *     than leave a scraper waiting on a port nobody serves.
 */
#include <arpa/inet.h>
#ifdef SCOMM_HAVE_MHD
#include <microhttpd.h>
#endif
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../core/features.h"
#include "tm.h"

#define SCOMM_EXPO_MAX          (32u << 20)
#define SCOMM_EXPO_CONN_TIMEOUT 10
#define SCOMM_EXPO_CONN_LIMIT   32

/* ---- text buffer -------------------------------------------------------- */

typedef struct scomm_expo_buf {
    char  *p;
    size_t len;
    size_t cap;
    int    failed;
} scomm_expo_buf_t;

__attribute__((format(printf, 2, 3)))
static void scomm_expo_put(scomm_expo_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    size_t ncap;
    char *np;
    int n;

    while (!b->failed) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        ncap = b->cap * 2;
        while (ncap - b->len <= (size_t)n) {
            ncap *= 2;
        }
        if (ncap > SCOMM_EXPO_MAX) {
            b->failed = 1;
            return;
        }
        np = realloc(b->p, ncap);
        if (np == NULL) {
            b->failed = 1;
            return;
        }
        b->p   = np;
        b->cap = ncap;
    }
}

static void scomm_expo_family(scomm_expo_buf_t *b, const char *name,
                              const char *type, const char *help)
{
    scomm_expo_put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                   type);
}

static inline uint64_t scomm_expo_ld(_Atomic uint64_t *x)
{
    return atomic_load_explicit(x, memory_order_relaxed);
}

/* "1.024e-06": seconds of 2^k ns, exact in decimal. */
static void scomm_expo_le(char *out, size_t len, int i)
{
    if (i >= SCOMM_TM_NBUCKETS - 1) {
        snprintf(out, len, "+Inf");
    } else {
        snprintf(out, len, "%.12g",
                 (double)(1ull << (i + SCOMM_TM_BUCKET_MIN_LOG2)) * 1e-9);
    }
}

static void scomm_expo_hist(scomm_expo_buf_t *b, const char *name,
                            const char *labels, const uint64_t *bucket,
                            uint64_t sum_ns)
{
    uint64_t cum = 0;
    char le[32];
    int i;

    for (i = 0; i < SCOMM_TM_NBUCKETS; i++) {
        cum += bucket[i];
        scomm_expo_le(le, sizeof(le), i);
        scomm_expo_put(b, "%s_bucket{%s,le=\"%s\"} %llu\n", name, labels, le,
                       (unsigned long long)cum);
    }
    scomm_expo_put(b, "%s_sum{%s} %.9f\n%s_count{%s} %llu\n", name, labels,
                   (double)sum_ns * 1e-9, name, labels,
                   (unsigned long long)cum);
}

#define SCOMM_EXPO_FOR_COMMS(_tm, _e)                                       \
    for ((_e) = scomm_tm_registry()->next;                                  \
         ((_e) != scomm_tm_registry()) &&                                   \
         (((_tm) = scomm_container_of((_e), scomm_tm_comm_t, list)), 1);    \
         (_e) = (_e)->next)

#define SCOMM_EXPO_FOR_SERIES(_tm, _op, _i, _s, _algo)                      \
    for ((_op) = 0; (_op) < SCOMM_TM_NOPS; (_op)++)                         \
        for ((_i) = 0; (_i) < SCOMM_TM_ALGO_SLOTS; (_i)++)                  \
            if ((((_s) = &(_tm)->ser[(_op)][(_i)]), 1) &&                   \
                (((_algo) = atomic_load_explicit(&(_s)->algo,               \
                                                 memory_order_acquire)) !=  \
                 NULL))

static void scomm_expo_labels(char *out, size_t len,
                              const scomm_tm_comm_t *tm, int op,
                              const char *algo)
{
    snprintf(out, len, "rank=\"%d\",comm=\"%u\",op=\"%s\",algo=\"%s\","
             "transport=\"%s\"", tm->wrank, tm->ctx, scomm_tm_op_name(op),
             algo, tm->transport);
}

static void scomm_expo_ops(scomm_expo_buf_t *b)
{
    static const struct {
        const char *name;
        const char *help;
        int         what; /* 0 count, 1 bytes, 2 bus bytes, 3 time */
    } fam[] = {
        {"scomm_ops_total", "Operations completed (any status).", 0},
        {"scomm_bytes_total",
         "Bytes of completed operations (nccl-tests size: all_reduce, "
         "broadcast, reduce: the buffer; all_gather, gather: total output; "
         "reduce_scatter, scatter: total input; all_to_all: total input per "
         "rank; p2p: the message).", 1},
        {"scomm_bus_bytes_total",
         "Bytes times the bus-bandwidth factor (all_reduce 2(n-1)/n; "
         "all_gather, reduce_scatter, all_to_all, gather, scatter (n-1)/n; "
         "others 1): its rate over rate(scomm_op_seconds_total) is "
         "busbw.", 2},
        {"scomm_op_seconds_total",
         "Time in operations: timed ones measured, untimed short ones "
         "(latency sampling) at their kind's last timed duration.", 3},
    };
    scomm_tm_comm_t *tm;
    scomm_tm_series_t *s;
    scomm_list_t *e;
    const char *algo;
    char lab[256];
    size_t f;
    int op, i;

    for (f = 0; f < SCOMM_ARRAY_SIZE(fam); f++) {
        scomm_expo_family(b, fam[f].name, "counter", fam[f].help);
        SCOMM_EXPO_FOR_COMMS(tm, e) {
            SCOMM_EXPO_FOR_SERIES(tm, op, i, s, algo) {
                scomm_expo_labels(lab, sizeof(lab), tm, op, algo);
                if (fam[f].what == 0) {
                    scomm_expo_put(b, "%s{%s} %llu\n", fam[f].name, lab,
                                   (unsigned long long)scomm_expo_ld(
                                       &s->count));
                } else if (fam[f].what == 1) {
                    scomm_expo_put(b, "%s{%s} %llu\n", fam[f].name, lab,
                                   (unsigned long long)scomm_expo_ld(
                                       &s->bytes));
                } else if (fam[f].what == 2) {
                    scomm_expo_put(b, "%s{%s} %.17g\n", fam[f].name, lab,
                                   (double)scomm_expo_ld(&s->bytes) *
                                       scomm_tm_bus_factor(op, tm->size));
                } else {
                    scomm_expo_put(b, "%s{%s} %.9f\n", fam[f].name, lab,
                                   (double)scomm_expo_ld(&s->time_ns) *
                                       1e-9);
                }
            }
        }
    }
    scomm_expo_family(b, "scomm_op_latency_seconds", "histogram",
                      "Latency of operations as the caller sees it (world "
                      "lock held to return), buckets at 2^k ns from 256 ns "
                      "to 17.2 s.");
    SCOMM_EXPO_FOR_COMMS(tm, e) {
        SCOMM_EXPO_FOR_SERIES(tm, op, i, s, algo) {
            uint64_t bk[SCOMM_TM_NBUCKETS];
            int k;

            for (k = 0; k < SCOMM_TM_NBUCKETS; k++) {
                bk[k] = scomm_expo_ld(&s->bucket[k]);
            }
            scomm_expo_labels(lab, sizeof(lab), tm, op, algo);
            scomm_expo_hist(b, "scomm_op_latency_seconds", lab, bk,
                            scomm_expo_ld(&s->sum_ns));
        }
    }
}

static void scomm_expo_errors(scomm_expo_buf_t *b)
{
    scomm_tm_comm_t *tm;
    scomm_list_t *e;
    uint64_t v;
    int op, k;

    scomm_expo_family(b, "scomm_op_errors_total", "counter",
                      "Operations that returned an error, by status.");
    SCOMM_EXPO_FOR_COMMS(tm, e) {
        for (op = 0; op < SCOMM_TM_NOPS; op++) {
            for (k = 0; k < SCOMM_TM_NSTATUS; k++) {
                v = scomm_expo_ld(&tm->err[op][k]);
                if (v == 0) {
                    continue;
                }
                scomm_expo_put(b, "scomm_op_errors_total{rank=\"%d\","
                               "comm=\"%u\",op=\"%s\",status=\"%s\"} %llu\n",
                               tm->wrank, tm->ctx, scomm_tm_op_name(op),
                               (k == 0) ? "other"
                                        : scomm_status_name(
                                              (scomm_status_t)-k),
                               (unsigned long long)v);
            }
        }
    }
}

static const struct {
    const char *name;
    const char *help;
    double      scale; /* 1e-9 for ns counters exposed in seconds */
} scomm_expo_ctrs[SCOMM_TM_COUNTER_COUNT] = {
    [SCOMM_TM_RETRIES]        = {"scomm_retries_total",
                                 "Operations retried.", 1},
    [SCOMM_TM_RESENT_CHUNKS]  = {"scomm_resent_chunks_total",
                                 "Chunks sent again.", 1},
    [SCOMM_TM_FUSION_HITS]    = {"scomm_fusion_hits_total",
                                 "Tensors that went into a fused "
                                 "operation.", 1},
    [SCOMM_TM_FUSED_OPS]      = {"scomm_fused_ops_total",
                                 "Fused operations issued.", 1},
    [SCOMM_TM_OVERLAP_COMM_NS] = {"scomm_overlap_comm_seconds_total",
                                  "Time of non-blocking communication.",
                                  1e-9},
    [SCOMM_TM_OVERLAP_HIDDEN_NS] = {"scomm_overlap_hidden_seconds_total",
                                    "Part of it that overlapped the "
                                    "caller's compute.", 1e-9},
    [SCOMM_TM_KV_BYTES]       = {"scomm_kv_bytes_total",
                                 "KV-cache payload bytes moved.", 1},
    [SCOMM_TM_KV_CHUNKS]      = {"scomm_kv_chunks_total",
                                 "KV-cache chunks moved.", 1},
    [SCOMM_TM_KV_RESENT]      = {"scomm_kv_resent_chunks_total",
                                 "KV-cache chunks sent again.", 1},
    [SCOMM_TM_KV_CHECKSUM_FAILURES] = {"scomm_kv_checksum_failures_total",
                                       "KV-cache chunks whose checksum "
                                       "failed.", 1},
    [SCOMM_TM_KV_TRANSFERS]   = {"scomm_kv_transfers_total",
                                 "KV-cache transfers completed.", 1},
    [SCOMM_TM_KV_ERRORS]      = {"scomm_kv_errors_total",
                                 "KV-cache transfers that failed.", 1},
    [SCOMM_TM_KV_RECONNECTS]  = {"scomm_kv_streams_reconnected_total",
                                 "KV-cache streams re-established after "
                                 "a break.", 1},
    [SCOMM_TM_KV_IPC_BYTES]   = {"scomm_kv_ipc_bytes_total",
                                 "KV-cache bytes a sender wrote device to "
                                 "device into the receiver's region over "
                                 "CUDA IPC (same host).", 1},
};

static void scomm_expo_num(scomm_expo_buf_t *b, const char *name,
                           const char *labels, uint64_t v, double scale)
{
    if (scale == 1.0) {
        scomm_expo_put(b, "%s{%s} %llu\n", name, labels,
                       (unsigned long long)v);
    } else {
        scomm_expo_put(b, "%s{%s} %.9f\n", name, labels, (double)v * scale);
    }
}

static void scomm_expo_counters(scomm_expo_buf_t *b)
{
    scomm_tm_comm_t *tm;
    scomm_list_t *e;
    char lab[96];
    int c;

    for (c = 0; c < SCOMM_TM_COUNTER_COUNT; c++) {
        scomm_expo_family(b, scomm_expo_ctrs[c].name, "counter",
                          scomm_expo_ctrs[c].help);
        snprintf(lab, sizeof(lab), "rank=\"%d\",comm=\"process\"",
                 scomm_tm_process_rank());
        scomm_expo_num(b, scomm_expo_ctrs[c].name, lab,
                       scomm_tm_global_ctr(c), scomm_expo_ctrs[c].scale);
        SCOMM_EXPO_FOR_COMMS(tm, e) {
            snprintf(lab, sizeof(lab), "rank=\"%d\",comm=\"%u\"", tm->wrank,
                     tm->ctx);
            scomm_expo_num(b, scomm_expo_ctrs[c].name, lab,
                           scomm_expo_ld(&tm->ctr[c]),
                           scomm_expo_ctrs[c].scale);
        }
    }
}

static void scomm_expo_kv_hist(scomm_expo_buf_t *b)
{
    uint64_t bk[SCOMM_TM_NBUCKETS], sum = 0;
    char lab[64];

    scomm_tm_global_kv_hist(bk, &sum);
    snprintf(lab, sizeof(lab), "rank=\"%d\"", scomm_tm_process_rank());
    scomm_expo_family(b, "scomm_kv_transfer_latency_seconds", "histogram",
                      "Latency of KV-cache transfers, buckets at 2^k ns.");
    scomm_expo_hist(b, "scomm_kv_transfer_latency_seconds", lab, bk, sum);
}

static void scomm_expo_steps(scomm_expo_buf_t *b)
{
    static const char *const names[] = {
        "scomm_steps_total", "scomm_step_seconds_total",
        "scomm_step_comm_seconds_total", "scomm_step_comm_share",
        "scomm_comm_size"
    };
    static const char *const helps[] = {
        "Steps marked with scomm_step_begin/scomm_step_end.",
        "Wall time inside marked steps.",
        ("Time spent in operations of the communicator's world during "
         "marked steps."),
        "Communication share of the last marked step (0..1).",
        "Ranks in the communicator."
    };
    scomm_tm_comm_t *tm;
    scomm_list_t *e;
    char lab[64];
    double share;
    uint64_t bits;
    size_t f;

    for (f = 0; f < SCOMM_ARRAY_SIZE(names); f++) {
        scomm_expo_family(b, names[f], (f < 3) ? "counter" : "gauge",
                          helps[f]);
        SCOMM_EXPO_FOR_COMMS(tm, e) {
            _Atomic uint64_t *v = NULL;

            snprintf(lab, sizeof(lab), "rank=\"%d\",comm=\"%u\"", tm->wrank,
                     tm->ctx);
            switch (f) {
            case 0:
                v = &tm->steps;
                scomm_expo_num(b, names[f], lab, scomm_expo_ld(v), 1);
                break;
            case 1:
                v = &tm->step_ns;
                scomm_expo_num(b, names[f], lab, scomm_expo_ld(v), 1e-9);
                break;
            case 2:
                v = &tm->step_comm_ns;
                scomm_expo_num(b, names[f], lab, scomm_expo_ld(v), 1e-9);
                break;
            case 3:
                bits = scomm_expo_ld(&tm->last_share_bits);
                memcpy(&share, &bits, sizeof(share));
                scomm_expo_put(b, "%s{%s} %.6f\n", names[f], lab, share);
                break;
            default:
                scomm_expo_put(b, "%s{%s} %d\n", names[f], lab, tm->size);
                break;
            }
        }
    }
}

/* Which build this process runs (docs/telemetry.md, "Conventions"): one
 * series of value 1 whose labels say it, joined or counted in queries. */
static void scomm_expo_build_info(scomm_expo_buf_t *b)
{
    scomm_expo_family(b, "scomm_build_info", "gauge",
                      "Always 1; the labels name the scomm build: "
                      "version, transports and optional libraries "
                      "built in.");
    scomm_expo_put(b, "scomm_build_info{version=\"%s\",transports=\"%s\","
                   "features=\"%s\"} 1\n", scomm_version_string(),
                   scomm_tl_names(), scomm_build_features());
}

static scomm_status_t scomm_expo_build(char **text_p, size_t *len_p)
{
    scomm_expo_buf_t b = {NULL, 0, 64u << 10, 0};

    b.p = malloc(b.cap);
    if (b.p == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    b.p[0] = '\0';
    scomm_expo_build_info(&b);
    scomm_tm_registry_lock();
    scomm_expo_ops(&b);
    scomm_expo_errors(&b);
    scomm_expo_counters(&b);
    scomm_expo_steps(&b);
    scomm_tm_registry_unlock();
    scomm_expo_kv_hist(&b);
    scomm_expo_family(&b, "scomm_metrics_enabled", "gauge",
                      "1 while operations are counted (SCOMM_METRICS, "
                      "control key metrics).");
    scomm_expo_put(&b, "scomm_metrics_enabled{rank=\"%d\"} %d\n",
                   scomm_tm_process_rank(),
                   (atomic_load(&scomm_tm_flags) & SCOMM_TM_F_METRICS) ? 1
                                                                       : 0);
    if (b.failed) {
        free(b.p);
        return SCOMM_ERR_NO_MEMORY;
    }
    *text_p = b.p;
    if (len_p != NULL) {
        *len_p = b.len;
    }
    return SCOMM_OK;
}

scomm_status_t scomm_metrics_text(char **text_p, size_t *len_p)
{
    scomm_status_t status;

    if (text_p == NULL) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                               "scomm_metrics_text: text_p is NULL");
    }
    status = scomm_expo_build(text_p, len_p);
    if (status != SCOMM_OK) {
        return scomm_set_error(NULL, status, "scomm_metrics_text: the text "
                               "would exceed %u bytes or memory ran out",
                               SCOMM_EXPO_MAX);
    }
    return SCOMM_OK;
}

void scomm_metrics_free(char *text)
{
    free(text);
}

/* ---- HTTP ------------------------------------------------------------- */

#ifdef SCOMM_HAVE_MHD
static pthread_mutex_t scomm_tm_http_lock = PTHREAD_MUTEX_INITIALIZER;
static struct MHD_Daemon *scomm_tm_httpd;
static int scomm_tm_http_port = -1;

static enum MHD_Result scomm_expo_reply(struct MHD_Connection *conn,
                                        unsigned code, const char *ctype,
                                        char *body, size_t len)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result scomm_expo_handler(void *cls,
                                          struct MHD_Connection *conn,
                                          const char *url,
                                          const char *method,
                                          const char *version,
                                          const char *upload,
                                          size_t *upload_size, void **ptr)
{
    static const char txt[] = "text/plain; charset=utf-8";
    char *body = NULL;
    size_t len = 0;

    (void)cls;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)ptr;
    if ((strcmp(method, "GET") != 0) && (strcmp(method, "HEAD") != 0)) {
        body = strdup("method not allowed\n");
        return (body == NULL) ? MHD_NO
                              : scomm_expo_reply(conn, 405, txt, body,
                                                 strlen(body));
    }
    if (strcmp(url, "/metrics") != 0) {
        body = strdup("not found: try /metrics\n");
        return (body == NULL) ? MHD_NO
                              : scomm_expo_reply(conn, 404, txt, body,
                                                 strlen(body));
    }
    if (scomm_expo_build(&body, &len) != SCOMM_OK) {
        body = strdup("metrics text too large or out of memory\n");
        return (body == NULL) ? MHD_NO
                              : scomm_expo_reply(conn, 500, txt, body,
                                                 strlen(body));
    }
    return scomm_expo_reply(conn, 200,
                            "text/plain; version=0.0.4; charset=utf-8",
                            body, len);
}

/* Start the server on SCOMM_METRICS_PORT (ppv, set); failures are
 * warnings. */
static void scomm_expo_serve(const scomm_pval_t *ppv, int local_rank)
{
    scomm_pval_t apv;
    const char *pv = ppv->text, *av;
    struct sockaddr_storage ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;
    long port;

    scomm_param_get_or_warn("SCOMM_METRICS_ADDR", &apv);
    av   = apv.text;
    port = (long)ppv->i;
    if (port > 0) {
        port += local_rank;
        if (port > 65535) {
            scomm_warn(SCOMM_SUB_TELEM, "SCOMM_METRICS_PORT %s + local rank "
                       "%d is past 65535: no metrics server", pv,
                       local_rank);
            return;
        }
    }
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, av, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port   = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, av, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port   = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else {
        scomm_warn(SCOMM_SUB_TELEM, "SCOMM_METRICS_ADDR='%s' is not a "
                   "numeric IPv4 or IPv6 address: no metrics server", av);
        return;
    }
    pthread_mutex_lock(&scomm_tm_http_lock);
    if (scomm_tm_httpd == NULL) {
        scomm_tm_httpd = MHD_start_daemon(
            flags, (uint16_t)port, NULL, NULL, scomm_expo_handler, NULL,
            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
            MHD_OPTION_CONNECTION_TIMEOUT,
            (unsigned int)SCOMM_EXPO_CONN_TIMEOUT,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)SCOMM_EXPO_CONN_LIMIT,
            MHD_OPTION_END);
        if (scomm_tm_httpd == NULL) {
            scomm_warn(SCOMM_SUB_TELEM, "metrics server on %s port %ld: "
                       "cannot start (port in use?)", av, port);
        } else {
            info = MHD_get_daemon_info(scomm_tm_httpd,
                                       MHD_DAEMON_INFO_BIND_PORT);
            scomm_tm_http_port = (info != NULL) ? (int)info->port
                                                : (int)port;
            /* A port the system picked is useless unless told: say it
             * at the default log level. */
            scomm_log_(((port == 0) ? SCOMM_LOG_WARN : SCOMM_LOG_INFO),
                       SCOMM_SUB_TELEM, "metrics at http://%s%s%s:%d/metrics",
                       (flags & MHD_USE_IPv6) ? "[" : "", av,
                       (flags & MHD_USE_IPv6) ? "]" : "",
                       scomm_tm_http_port);
        }
    }
    pthread_mutex_unlock(&scomm_tm_http_lock);
}

void scomm_tm_http_stop(void)
{
    struct MHD_Daemon *d;

    pthread_mutex_lock(&scomm_tm_http_lock);
    d                  = scomm_tm_httpd;
    scomm_tm_httpd     = NULL;
    scomm_tm_http_port = -1;
    pthread_mutex_unlock(&scomm_tm_http_lock);
    if (d != NULL) {
        MHD_stop_daemon(d);
    }
}

int32_t scomm_metrics_port(void)
{
    int32_t port;

    pthread_mutex_lock(&scomm_tm_http_lock);
    port = scomm_tm_http_port;
    pthread_mutex_unlock(&scomm_tm_http_lock);
    return port;
}
#else /* !SCOMM_HAVE_MHD */
void scomm_tm_http_stop(void)
{
}

int32_t scomm_metrics_port(void)
{
    return -1;
}
#endif /* SCOMM_HAVE_MHD */

scomm_status_t scomm_tm_http_start(int local_rank)
{
    scomm_pval_t ppv;
#ifndef SCOMM_HAVE_MHD
    char why[320];
#endif

    /* A bad value is a warning and no server (the default). */
    scomm_param_get_or_warn("SCOMM_METRICS_PORT", &ppv);
    if (ppv.text[0] == '\0') {
        return SCOMM_OK;
    }
#ifdef SCOMM_HAVE_MHD
    scomm_expo_serve(&ppv, local_rank);
    return SCOMM_OK;
#else
    (void)local_rank;
    scomm_feature_missing(SCOMM_FEATURE_MHD, why, sizeof(why),
                          "SCOMM_METRICS_PORT=%.20s: the /metrics HTTP "
                          "server", ppv.text);
    scomm_set_thread_error("%s", why); /* scomm_init prefixes its name */
    return SCOMM_ERR_UNSUPPORTED;
#endif
}
