/*
 * test_trace.c - SCOMM_TRACE writes one Chrome trace-event JSON file per
 * rank that a JSON parser (jansson) loads, with exactly the operations
 * the rank ran while tracing was on.
 *
 * The parent sets SCOMM_TRACE=<tmpdir>/trace.%r.json; each rank runs
 * N_AR all_reduce, N_BC broadcast, N_BAR barrier, a marked step, then
 * turns tracing off (scomm_control_set "trace" "off") for N_OFF more
 * all_reduce that must not appear, and destroys its communicator (which
 * flushes). The parent then checks each file: an object with a
 * traceEvents array; "X" events all_reduce / broadcast / barrier / step
 * counted exactly; each has pid = rank, ts and dur >= 0, args.algo (a
 * string), args.bytes as called, args.peers = the 4 world ranks; the
 * all_reduce events are in time order.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scomm.h"
#include "st_test.h"

#define N_AR   30
#define N_BC   12
#define N_BAR  5
#define N_OFF  17
#define COUNT  64   /* floats */

static char dir[256];

static int rank_fn(int rank, int size, void *arg)
{
    scomm_comm_t *comm;
    float v[COUNT];
    char val[16];
    int i;

    (void)arg;
    (void)size;
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    ST_ASSERT_OK(scomm_control_get(comm, "trace", val, sizeof(val)));
    ST_ASSERT(strcmp(val, "on") == 0);
    memset(v, 0, sizeof(v));
    ST_ASSERT_OK(scomm_step_begin(comm));
    for (i = 0; i < N_AR; i++) {
        ST_ASSERT_OK(scomm_all_reduce(v, v, COUNT, SCOMM_FLOAT32, SCOMM_SUM,
                                      comm));
    }
    ST_ASSERT_OK(scomm_step_end(comm, NULL));
    for (i = 0; i < N_BC; i++) {
        ST_ASSERT_OK(scomm_broadcast(v, COUNT, SCOMM_FLOAT32, i % 4, comm));
    }
    for (i = 0; i < N_BAR; i++) {
        ST_ASSERT_OK(scomm_barrier(comm));
    }
    ST_ASSERT_OK(scomm_control_set(comm, "trace", "off"));
    for (i = 0; i < N_OFF; i++) {
        ST_ASSERT_OK(scomm_all_reduce(v, v, COUNT, SCOMM_FLOAT32, SCOMM_SUM,
                                      comm));
    }
    (void)rank;
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

static void check_file(int rank)
{
    char path[320];
    json_error_t err;
    json_t *root, *evs, *ev, *args, *peers;
    int n_ar = 0, n_bc = 0, n_bar = 0, n_step = 0;
    double last_ts = -1, ts;
    const char *name, *ph;
    size_t i;

    snprintf(path, sizeof(path), "%s/trace.%d.json", dir, rank);
    root = json_load_file(path, 0, &err);
    if (root == NULL) {
        fprintf(stderr, "%s: line %d: %s\n", path, err.line, err.text);
    }
    ST_ASSERT(root != NULL);
    evs = json_object_get(root, "traceEvents");
    ST_ASSERT(json_is_array(evs));
    json_array_foreach(evs, i, ev) {
        ph   = json_string_value(json_object_get(ev, "ph"));
        name = json_string_value(json_object_get(ev, "name"));
        ST_ASSERT((ph != NULL) && (name != NULL));
        ST_ASSERT_EQ(json_integer_value(json_object_get(ev, "pid")), rank);
        if (strcmp(ph, "X") != 0) {
            continue;
        }
        ST_ASSERT(json_is_number(json_object_get(ev, "ts")));
        ST_ASSERT(json_number_value(json_object_get(ev, "dur")) >= 0);
        args = json_object_get(ev, "args");
        ST_ASSERT(json_is_object(args));
        if (strcmp(name, "step") == 0) {
            n_step++;
            continue;
        }
        ST_ASSERT(json_is_string(json_object_get(args, "algo")));
        peers = json_object_get(args, "peers");
        ST_ASSERT(json_is_array(peers));
        ST_ASSERT_EQ(json_array_size(peers), 4);
        ST_ASSERT_EQ(json_integer_value(json_array_get(peers, 3)), 3);
        if (strcmp(name, "all_reduce") == 0) {
            n_ar++;
            ST_ASSERT_EQ(json_integer_value(json_object_get(args, "bytes")),
                         COUNT * 4);
            ts = json_number_value(json_object_get(ev, "ts"));
            ST_ASSERT(ts >= last_ts);
            last_ts = ts;
        } else if (strcmp(name, "broadcast") == 0) {
            n_bc++;
            ST_ASSERT_EQ(json_integer_value(json_object_get(args, "bytes")),
                         COUNT * 4);
        } else if (strcmp(name, "barrier") == 0) {
            n_bar++;
        }
    }
    printf("%s: %zu events (%d all_reduce, %d broadcast, %d barrier, "
           "%d step)\n", path, json_array_size(evs), n_ar, n_bc, n_bar,
           n_step);
    ST_ASSERT_EQ(n_ar, N_AR);
    ST_ASSERT_EQ(n_bc, N_BC);
    ST_ASSERT_EQ(n_bar, N_BAR);
    ST_ASSERT_EQ(n_step, 1);
    json_decref(root);
}

int main(int argc, char **argv)
{
    char tmpl[320], cmd[320];
    int np = 4, timeout = 60, c, ret, r;

    while ((c = getopt(argc, argv, "n:t:")) != -1) {
        if (c == 'n') {
            np = atoi(optarg);
        } else if (c == 't') {
            timeout = atoi(optarg);
        }
    }
    ST_ASSERT(np == 4);
    snprintf(dir, sizeof(dir), "/tmp/scomm_trace_XXXXXX");
    ST_ASSERT(mkdtemp(dir) != NULL);
    snprintf(tmpl, sizeof(tmpl), "%s/trace.%%r.json", dir);
    setenv("SCOMM_TRACE", tmpl, 1);
    ret = st_run_ranks(np, rank_fn, NULL, timeout);
    if (ret != 0) {
        return ret;
    }
    for (r = 0; r < np; r++) {
        check_file(r);
    }
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", dir);
    }
    return 0;
}
