/*
 * test_metrics.c - the /metrics endpoint scraped during a benchmark loop.
 *
 * Every rank starts its own server (SCOMM_METRICS_PORT=0: a free port,
 * read back with scomm_metrics_port()), then runs a known mix of calls
 * while a thread of the same process fetches http://127.0.0.1:<port>/
 * metrics over and over with a plain socket client. At the end each rank
 * fetches once more and checks, from the text served over HTTP:
 *   - scomm_ops_total and scomm_bytes_total of every operation equal what
 *     it ran (all_reduce, all_gather, broadcast, barrier, send, recv);
 *   - with latency_sample 1 the latency histogram's _count equals the
 *     operations, its buckets never decrease and +Inf equals _count;
 *   - a mismatch caught by SCOMM_CHECK=1 is one scomm_op_errors_total
 *     {status="SCOMM_ERR_MISMATCH"};
 *   - one marked step: scomm_steps_total 1, its share in [0, 1];
 *   - the scrapes made during the loop saw counts that never decreased;
 *   - an unknown path is 404.
 * Rank 0 writes the final text to a file, and the parent runs
 * `promtool check metrics` on it (skipped, visibly, without promtool).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "scomm.h"
#include "st_test.h"

#define N_ALLREDUCE  2000
#define AR_COUNT     256     /* floats: 1 KiB */
#define N_ALLGATHER  300
#define AG_COUNT     16      /* int32 per rank */
#define N_BCAST      100
#define BC_BYTES     4096
#define N_BARRIER    40
#define N_P2P        25
#define P2P_BYTES    100

static char out_dir[256];

/* GET path from 127.0.0.1:port; returns the malloc'd response (headers
 * and body) or NULL. Times out after 5 s. */
static char *http_get(int port, const char *path, int *code)
{
    struct sockaddr_in sa;
    struct timeval tv = {5, 0};
    char req[256], *buf;
    size_t len = 0, cap = 1 << 16;
    ssize_t n;
    int fd;

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family      = AF_INET;
    sa.sin_port        = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return NULL;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
             path);
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
        close(fd);
        return NULL;
    }
    buf = malloc(cap);
    ST_ASSERT(buf != NULL);
    for (;;) {
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            ST_ASSERT(buf != NULL);
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", code) != 1) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Sum of the samples of metric `name` (exact name, then '{') whose label
 * set contains every one of the NULL-terminated substrings. */
static double metric_sum(const char *text, const char *name, ...)
{
    const char *line = text, *end, *sp;
    const char *want[8];
    size_t nl = strlen(name);
    double sum = 0;
    va_list ap;
    int nw = 0, i, ok;
    char tmp[1024];

    va_start(ap, name);
    while ((nw < 8) && ((want[nw] = va_arg(ap, const char *)) != NULL)) {
        nw++;
    }
    va_end(ap);
    for (; *line != '\0'; line = (*end != '\0') ? end + 1 : end) {
        end = strchr(line, '\n');
        if (end == NULL) {
            end = line + strlen(line);
        }
        if ((size_t)(end - line) >= sizeof(tmp) ||
            (strncmp(line, name, nl) != 0) || (line[nl] != '{')) {
            continue;
        }
        memcpy(tmp, line, (size_t)(end - line));
        tmp[end - line] = '\0';
        sp = strrchr(tmp, ' ');
        ST_ASSERT(sp != NULL);
        for (ok = 1, i = 0; ok && (i < nw); i++) {
            ok = (strstr(tmp, want[i]) != NULL);
        }
        if (ok) {
            sum += strtod(sp + 1, NULL);
        }
    }
    return sum;
}

typedef struct scraper {
    int            port;
    atomic_int     stop;
    atomic_int     scrapes;
    int            regress;  /* a count went down between scrapes */
    int            failures;
} scraper_t;

static void *scrape_loop(void *arg)
{
    scraper_t *s = arg;
    double prev = 0, cur;
    char *r;
    int code = 0;

    while (!atomic_load(&s->stop)) {
        r = http_get(s->port, "/metrics", &code);
        if ((r == NULL) || (code != 200)) {
            s->failures++;
        } else {
            cur = metric_sum(r, "scomm_ops_total", "op=\"all_reduce\"",
                             NULL);
            if (cur < prev) {
                s->regress++;
            }
            prev = cur;
            atomic_fetch_add(&s->scrapes, 1);
        }
        free(r);
        usleep(2000);
    }
    return NULL;
}

/* Cumulative buckets never decrease within a series (its lines come
 * together, ending with le="+Inf"); at least one series exists. */
static void check_buckets(const char *text)
{
    static const char pre[] = "scomm_op_latency_seconds_bucket{";
    const char *line = text, *end, *le, *ple = NULL;
    double v, pv = 0;
    int nseries = 0;

    for (; *line != '\0'; line = (*end != '\0') ? end + 1 : end) {
        end = strchr(line, '\n');
        end = (end == NULL) ? line + strlen(line) : end;
        if (strncmp(line, pre, sizeof(pre) - 1) != 0) {
            ple = NULL;
            continue;
        }
        le = strstr(line, ",le=");
        ST_ASSERT((le != NULL) && (le < end));
        v = strtod(strrchr(line, ' ') + 1, NULL);
        if (ple != NULL) {
            /* The previous line was an earlier bucket of this series. */
            ST_ASSERT(pv <= v);
        }
        if (strncmp(le, ",le=\"+Inf\"}", 11) == 0) {
            nseries++;
            ple = NULL;
        } else {
            ple = le;
        }
        pv = v;
    }
    ST_ASSERT(nseries > 0);
}

static void expect(const char *text, const char *name, const char *op,
                   double want)
{
    char opl[64];
    double got;

    snprintf(opl, sizeof(opl), "op=\"%s\"", op);
    got = metric_sum(text, name, opl, "comm=\"1\"", NULL);
    if (got != want) {
        fprintf(stderr, "%s{%s}: got %.0f, want %.0f\n", name, opl, got,
                want);
    }
    ST_ASSERT(got == want);
}

static int rank_fn(int rank, int size, void *arg)
{
    scomm_comm_t *comm;
    float ar[AR_COUNT];
    int32_t ag_in[AG_COUNT], *ag_out;
    char bc[BC_BYTES], p2p[P2P_BYTES], path[320];
    scraper_t sc;
    pthread_t th;
    double share = -1, n, b;
    char *r, *body;
    int code = 0, i, port, np2p_send = 0, np2p_recv = 0;
    FILE *f;

    (void)arg;
    setenv("SCOMM_METRICS_PORT", "0", 1);
    setenv("SCOMM_CHECK", "1", 1);
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    port = scomm_metrics_port();
    ST_ASSERT(port > 0);
    ST_ASSERT_OK(scomm_control_set(comm, "latency_sample", "1"));

    memset(&sc, 0, sizeof(sc));
    sc.port = port;
    ST_ASSERT_EQ(pthread_create(&th, NULL, scrape_loop, &sc), 0);
    /* The scraper is up and served before the loop starts (5 s at most),
     * so it scrapes while the loop runs even on a loaded machine. */
    for (i = 0; (i < 5000) && (atomic_load(&sc.scrapes) == 0); i++) {
        usleep(1000);
    }
    ST_ASSERT(atomic_load(&sc.scrapes) > 0);

    ag_out = calloc((size_t)size * AG_COUNT, sizeof(*ag_out));
    ST_ASSERT(ag_out != NULL);
    for (i = 0; i < AR_COUNT; i++) {
        ar[i] = 1.0f;
    }
    ST_ASSERT_OK(scomm_step_begin(comm));
    for (i = 0; i < N_ALLREDUCE; i++) {
        ST_ASSERT_OK(scomm_all_reduce(ar, ar, AR_COUNT, SCOMM_FLOAT32,
                                      SCOMM_MAX, comm));
        if ((i % 7) == 0) {
            ST_ASSERT_OK(scomm_barrier(comm));
        }
    }
    ST_ASSERT_OK(scomm_step_end(comm, &share));
    for (i = 0; i < N_ALLGATHER; i++) {
        ag_in[0] = rank;
        ST_ASSERT_OK(scomm_all_gather(ag_in, ag_out, AG_COUNT, SCOMM_INT32,
                                      comm));
    }
    for (i = 0; i < N_BCAST; i++) {
        ST_ASSERT_OK(scomm_broadcast(bc, BC_BYTES, SCOMM_UINT8, i % size,
                                     comm));
    }
    for (i = 0; i < N_P2P; i++) {
        if (rank == 0) {
            ST_ASSERT_OK(scomm_send(p2p, P2P_BYTES, SCOMM_UINT8, 1, 5, comm));
            np2p_send++;
        } else if (rank == 1) {
            ST_ASSERT_OK(scomm_recv(p2p, P2P_BYTES, SCOMM_UINT8, 0, 5, comm));
            np2p_recv++;
        }
    }
    /* SCOMM_CHECK=1: every rank sees the mismatch and returns it. */
    ST_ASSERT_STATUS(scomm_all_reduce(ar, ar, (size_t)(1 + (rank == 0)),
                                      SCOMM_FLOAT32, SCOMM_SUM, comm),
                     SCOMM_ERR_MISMATCH);
    for (i = 0; i < N_BARRIER; i++) {
        ST_ASSERT_OK(scomm_barrier(comm));
    }

    atomic_store(&sc.stop, 1);
    ST_ASSERT_EQ(pthread_join(th, NULL), 0);
    printf("rank %d: port %d, %d scrapes during the loop, step share %.3f\n",
           rank, port, atomic_load(&sc.scrapes), share);
    ST_ASSERT(atomic_load(&sc.scrapes) > 1);
    ST_ASSERT_EQ(sc.failures, 0);
    ST_ASSERT_EQ(sc.regress, 0);

    r = http_get(port, "/nothing", &code);
    ST_ASSERT(r != NULL);
    ST_ASSERT_EQ(code, 404);
    free(r);
    r = http_get(port, "/metrics", &code);
    ST_ASSERT(r != NULL);
    ST_ASSERT_EQ(code, 200);
    ST_ASSERT(strstr(r, "text/plain; version=0.0.4") != NULL);
    body = strstr(r, "\r\n\r\n");
    ST_ASSERT(body != NULL);
    body += 4;

    /* The build's identity: one series of 1, this header's version, the
     * two transports every build has. */
    ST_ASSERT_EQ(metric_sum(body, "scomm_build_info",
                            "version=\"" SCOMM_VERSION_STRING "\"",
                            "shm", "tcp", NULL), 1);
    ST_ASSERT(strstr(body, "\nscomm_build_info{") != NULL);
    ST_ASSERT(strstr(strstr(body, "\nscomm_build_info{"), "features=\"") !=
              NULL);

    /* all_reduce: the loop plus the mismatched call (counted, failed). */
    expect(body, "scomm_ops_total", "all_reduce", N_ALLREDUCE + 1);
    expect(body, "scomm_bytes_total", "all_reduce",
           (double)N_ALLREDUCE * AR_COUNT * 4 + 4.0 * (1 + (rank == 0)));
    expect(body, "scomm_ops_total", "all_gather", N_ALLGATHER);
    expect(body, "scomm_bytes_total", "all_gather",
           (double)N_ALLGATHER * AG_COUNT * 4 * size);
    expect(body, "scomm_ops_total", "broadcast", N_BCAST);
    expect(body, "scomm_bytes_total", "broadcast", (double)N_BCAST * BC_BYTES);
    expect(body, "scomm_ops_total", "barrier",
           N_BARRIER + (N_ALLREDUCE + 6) / 7);
    expect(body, "scomm_ops_total", "send", np2p_send);
    expect(body, "scomm_bytes_total", "send", np2p_send * P2P_BYTES);
    expect(body, "scomm_ops_total", "recv", np2p_recv);
    expect(body, "scomm_bytes_total", "recv", np2p_recv * P2P_BYTES);
    /* Every call was timed (latency_sample 1). */
    expect(body, "scomm_op_latency_seconds_count", "all_reduce",
           N_ALLREDUCE + 1);
    check_buckets(body);
    n = metric_sum(body, "scomm_op_latency_seconds_bucket",
                   "op=\"all_gather\"", "le=\"+Inf\"", NULL);
    ST_ASSERT(n == N_ALLGATHER);
    b = metric_sum(body, "scomm_op_latency_seconds_sum", "op=\"all_gather\"",
                   NULL);
    ST_ASSERT((b > 0) && (b < 60));
    n = metric_sum(body, "scomm_op_errors_total", "op=\"all_reduce\"",
                   "status=\"SCOMM_ERR_MISMATCH\"", NULL);
    ST_ASSERT(n == 1);
    n = metric_sum(body, "scomm_steps_total", "comm=\"1\"", NULL);
    ST_ASSERT(n == 1);
    ST_ASSERT((share >= 0) && (share <= 1));
    n = metric_sum(body, "scomm_step_comm_share", "comm=\"1\"", NULL);
    ST_ASSERT((n > share - 1e-5) && (n < share + 1e-5));

    if (rank == 0) {
        snprintf(path, sizeof(path), "%s/metrics.txt", out_dir);
        f = fopen(path, "w");
        ST_ASSERT(f != NULL);
        fputs(body, f);
        fclose(f);
    }
    free(r);
    free(ag_out);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    /* The last communicator gone, the server is gone. */
    ST_ASSERT_EQ(scomm_metrics_port(), -1);
    return 0;
}

static int have_promtool(void)
{
    return system("command -v promtool >/dev/null 2>&1") == 0;
}

int main(int argc, char **argv)
{
    char cmd[512];
    int np = 2, timeout = 60, c, ret;

    while ((c = getopt(argc, argv, "n:t:")) != -1) {
        if (c == 'n') {
            np = atoi(optarg);
        } else if (c == 't') {
            timeout = atoi(optarg);
        }
    }
    snprintf(out_dir, sizeof(out_dir), "/tmp/scomm_metrics_XXXXXX");
    ST_ASSERT(mkdtemp(out_dir) != NULL);
    ret = st_run_ranks(np, rank_fn, NULL, timeout);
    if (ret != 0) {
        return ret;
    }
    if (!have_promtool()) {
        printf("SKIP (promtool part only): promtool not found; install "
               "Debian's prometheus package to lint the exposition\n");
    } else {
        snprintf(cmd, sizeof(cmd), "promtool check metrics < %s/metrics.txt",
                 out_dir);
        ret = system(cmd);
        printf("promtool check metrics: exit %d\n", ret);
        ST_ASSERT_EQ(ret, 0);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", out_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", out_dir);
    }
    return 0;
}
