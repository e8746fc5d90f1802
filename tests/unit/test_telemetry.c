/*
 * test_telemetry.c - telemetry in one process (a 1-rank world):
 *   - histogram bucket boundaries (2^k ns, le inclusive, +Inf);
 *   - scomm_metrics_text: exact counts, bytes and histogram of local
 *     collectives, with every call timed (latency_sample 1) and with the
 *     default sampling (counts exact, histogram a subset);
 *   - metrics off: nothing counted; back on: counting resumes;
 *   - counters of other modules (scomm_tm_add, process-wide and per
 *     communicator) and the KV latency histogram appear;
 *   - step markers: end without begin is INVALID_USAGE;
 *   - control keys: set/get round trips, bad keys and values rejected
 *     with ERR_INVALID_ARG and the control table's getters;
 *   - no HTTP server without SCOMM_METRICS_PORT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_test.h"
#include "telemetry/control.h"
#include "telemetry/tm.h"

/* Value of the one sample whose line starts with prefix, or -1. */
static double sample(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);

    while (p != NULL && *p != '\0') {
        if (strncmp(p, prefix, n) == 0) {
            return strtod(strchr(p + n, ' ') + 1, NULL);
        }
        p = strchr(p, '\n');
        p = (p != NULL) ? p + 1 : NULL;
    }
    return -1;
}

static char *text(void)
{
    char *t = NULL;
    size_t len = 0;

    ST_ASSERT_OK(scomm_metrics_text(&t, &len));
    ST_ASSERT(t != NULL);
    ST_ASSERT_EQ(strlen(t), len);
    return t;
}

#define LAB(_op, _algo)                                                     \
    "{rank=\"0\",comm=\"1\",op=\"" _op "\",algo=\"" _algo "\","              \
    "transport=\"self\""

static void test_buckets(void)
{
    ST_ASSERT_EQ(scomm_tm_bucket(0), 0);
    ST_ASSERT_EQ(scomm_tm_bucket(256), 0);
    ST_ASSERT_EQ(scomm_tm_bucket(257), 1);
    ST_ASSERT_EQ(scomm_tm_bucket(512), 1);
    ST_ASSERT_EQ(scomm_tm_bucket(1000), 2);   /* le 1.024 us */
    ST_ASSERT_EQ(scomm_tm_bucket(1ull << 34), SCOMM_TM_NBUCKETS - 2);
    ST_ASSERT_EQ(scomm_tm_bucket((1ull << 34) + 1), SCOMM_TM_NBUCKETS - 1);
    ST_ASSERT_EQ(scomm_tm_bucket(UINT64_MAX), SCOMM_TM_NBUCKETS - 1);
}

static void test_control(scomm_comm_t *comm)
{
    char v[64];

    ST_ASSERT_OK(scomm_control_get(comm, "fusion", v, sizeof(v)));
    ST_ASSERT(strcmp(v, "default") == 0);
    ST_ASSERT_EQ(scomm_control_fusion(), -1);
    ST_ASSERT_OK(scomm_control_set(comm, "fusion", "off"));
    ST_ASSERT_EQ(scomm_control_fusion(), 0);
    ST_ASSERT_OK(scomm_control_get(NULL, "fusion", v, sizeof(v)));
    ST_ASSERT(strcmp(v, "off") == 0);
    ST_ASSERT_OK(scomm_control_set(NULL, "chunk_size", "256k"));
    ST_ASSERT_EQ(scomm_control_chunk_size(), 256 << 10);
    ST_ASSERT_OK(scomm_control_get(comm, "chunk_size", v, sizeof(v)));
    ST_ASSERT(strcmp(v, "262144") == 0);
    ST_ASSERT_OK(scomm_control_set(comm, "channels", "4"));
    ST_ASSERT_EQ(scomm_control_channels(), 4);
    ST_ASSERT_STATUS(scomm_control_set(comm, "channels", "0"),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_control_set(comm, "channels", "4x"),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_EQ(scomm_control_channels(), 4);
    ST_ASSERT_STATUS(scomm_control_set(comm, "chunk_size", "1"),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_control_set(comm, "fusion", "maybe"),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_control_set(comm, "nonsense", "1"),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(strstr(scomm_comm_last_error(comm), "latency_sample") != NULL);
    ST_ASSERT_STATUS(scomm_control_get(comm, "nonsense", v, sizeof(v)),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_control_get(comm, "metrics", v, 2),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_control_set(comm, NULL, "1"),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_OK(scomm_control_get(comm, "metrics", v, sizeof(v)));
    ST_ASSERT(strcmp(v, "on") == 0);
    ST_ASSERT_OK(scomm_control_get(comm, "trace", v, sizeof(v)));
    ST_ASSERT(strcmp(v, "off") == 0);
}

int main(void)
{
    scomm_comm_t *comm;
    float a[4] = {1, 2, 3, 4}, b[4];
    char *t;
    int i;

    setenv("SCOMM_RANK", "0", 1);
    setenv("SCOMM_WORLD_SIZE", "1", 1);
    setenv("SCOMM_MASTER_ADDR", "127.0.0.1", 1);
    setenv("SCOMM_MASTER_PORT", "1", 1);
    unsetenv("SCOMM_METRICS_PORT");
    unsetenv("SCOMM_METRICS");
    unsetenv("SCOMM_TRACE");
    test_buckets();
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_EQ(scomm_metrics_port(), -1);
    test_control(comm);

    /* Every call timed. */
    ST_ASSERT_OK(scomm_control_set(comm, "latency_sample", "1"));
    for (i = 0; i < 10; i++) {
        ST_ASSERT_OK(scomm_all_reduce(a, b, 4, SCOMM_FLOAT32, SCOMM_SUM,
                                      comm));
    }
    ST_ASSERT_OK(scomm_all_reduce(a, b, 0, SCOMM_FLOAT32, SCOMM_SUM, comm));
    t = text();
    ST_ASSERT(sample(t, "scomm_ops_total" LAB("all_reduce", "local") "}") ==
              10);
    ST_ASSERT(sample(t, "scomm_bytes_total" LAB("all_reduce", "local") "}") ==
              160);
    ST_ASSERT(sample(t, "scomm_ops_total" LAB("all_reduce", "none") "}") ==
              1);
    ST_ASSERT(sample(t, "scomm_op_latency_seconds_count"
                        LAB("all_reduce", "local") "}") == 10);
    ST_ASSERT(sample(t, "scomm_op_latency_seconds_bucket"
                        LAB("all_reduce", "local") ",le=\"+Inf\"}") == 10);
    ST_ASSERT(sample(t, "scomm_op_latency_seconds_sum"
                        LAB("all_reduce", "local") "}") > 0);
    /* The bus factor of one rank is 0. */
    ST_ASSERT(sample(t, "scomm_bus_bytes_total"
                        LAB("all_reduce", "local") "}") == 0);
    ST_ASSERT(strstr(t, "# TYPE scomm_op_latency_seconds histogram\n") !=
              NULL);
    ST_ASSERT(strstr(t, "le=\"1.024e-06\"") != NULL);
    scomm_metrics_free(t);

    /* Default sampling: counts exact, fewer timed. */
    ST_ASSERT_OK(scomm_control_set(comm, "latency_sample", "64"));
    for (i = 0; i < 1000; i++) {
        ST_ASSERT_OK(scomm_all_reduce(a, b, 4, SCOMM_FLOAT32, SCOMM_SUM,
                                      comm));
    }
    t = text();
    ST_ASSERT(sample(t, "scomm_ops_total" LAB("all_reduce", "local") "}") ==
              1010);
    ST_ASSERT(sample(t, "scomm_bytes_total" LAB("all_reduce", "local") "}") ==
              16160);
    ST_ASSERT(sample(t, "scomm_op_latency_seconds_count"
                        LAB("all_reduce", "local") "}") < 1010);
    ST_ASSERT(sample(t, "scomm_op_latency_seconds_count"
                        LAB("all_reduce", "local") "}") >= 10 + 1000 / 64);
    scomm_metrics_free(t);

    /* Off: nothing counted. */
    ST_ASSERT_OK(scomm_control_set(comm, "metrics", "off"));
    for (i = 0; i < 5; i++) {
        ST_ASSERT_OK(scomm_barrier(comm));
    }
    ST_ASSERT_OK(scomm_control_set(comm, "metrics", "on"));
    ST_ASSERT_OK(scomm_barrier(comm));
    t = text();
    ST_ASSERT(sample(t, "scomm_ops_total" LAB("barrier", "dissemination")
                        "}") == 1);
    ST_ASSERT(sample(t, "scomm_metrics_enabled{rank=\"0\"}") == 1);
    scomm_metrics_free(t);

    /* Other modules' counters. */
    scomm_tm_add(NULL, SCOMM_TM_KV_BYTES, 4096);
    scomm_tm_add(NULL, SCOMM_TM_KV_CHUNKS, 2);
    scomm_tm_add(NULL, SCOMM_TM_KV_CHECKSUM_FAILURES, 1);
    scomm_tm_add(comm, SCOMM_TM_FUSION_HITS, 7);
    scomm_tm_add(comm, SCOMM_TM_COUNTER_COUNT, 7); /* ignored */
    scomm_tm_kv_latency(3000);
    t = text();
    ST_ASSERT(sample(t, "scomm_kv_bytes_total{rank=\"0\",comm=\"process\"}")
              == 4096);
    ST_ASSERT(sample(t, "scomm_kv_chunks_total{rank=\"0\",comm=\"process\"}")
              == 2);
    ST_ASSERT(sample(t, "scomm_kv_checksum_failures_total{rank=\"0\","
                        "comm=\"process\"}") == 1);
    ST_ASSERT(sample(t, "scomm_fusion_hits_total{rank=\"0\",comm=\"1\"}") ==
              7);
    ST_ASSERT(sample(t, "scomm_kv_transfer_latency_seconds_bucket{rank=\"0\","
                        "le=\"2.048e-06\"}") == 0);
    ST_ASSERT(sample(t, "scomm_kv_transfer_latency_seconds_bucket{rank=\"0\","
                        "le=\"4.096e-06\"}") == 1);
    scomm_metrics_free(t);

    /* Steps. */
    ST_ASSERT_STATUS(scomm_step_end(comm, NULL), SCOMM_ERR_INVALID_USAGE);
    ST_ASSERT_OK(scomm_step_begin(comm));
    ST_ASSERT_OK(scomm_barrier(comm));
    ST_ASSERT_OK(scomm_step_end(comm, NULL));
    ST_ASSERT_STATUS(scomm_step_begin(NULL), SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_metrics_text(NULL, NULL), SCOMM_ERR_INVALID_ARG);
    t = text();
    ST_ASSERT(sample(t, "scomm_steps_total{rank=\"0\",comm=\"1\"}") == 1);
    scomm_metrics_free(t);

    ST_ASSERT_OK(scomm_comm_destroy(comm));
    /* A destroyed communicator's series are gone. */
    t = text();
    ST_ASSERT(strstr(t, "op=\"barrier\"") == NULL);
    scomm_metrics_free(t);
    printf("test_telemetry: ok\n");
    return 0;
}
