/*
 * test_selector_policy.c - the selector's policy file (SCOMM_SELECTOR_CONFIG,
 * coll/policy.c): parsing, every error naming the file and where, the rule
 * matching, and the selector using it on 3 mock ranks (threads) -- the
 * rule id and reason in the record, the fallback when the rule's algorithm
 * cannot run the case, results still right, and a broken file refusing
 * every collective with its line and column.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coll/coll.h"
#include "scomm.h"
#include "st_test.h"

#define NR 3

static int parse(const char *text, scomm_coll_policy_t *pol, char *err,
                 size_t errlen)
{
    return scomm_coll_policy_parse(text, strlen(text), "p.json", pol, err,
                                   errlen);
}

/* text must fail with a message containing want. */
static void expect_error(const char *text, const char *want)
{
    scomm_coll_policy_t pol;
    char err[320] = "";

    if ((parse(text, &pol, err, sizeof(err)) == 0) ||
        (strstr(err, want) == NULL)) {
        fprintf(stderr, "input: %s\nerror: '%s'\nwanted: '%s'\n", text, err,
                want);
        ST_ASSERT(0);
    }
    ST_ASSERT_EQ(pol.n, 0);
    ST_ASSERT(pol.rules == NULL);
}

static void test_parse(void)
{
    static const char good[] =
        "{\"version\": 1, \"rules\": [\n"
        " {\"id\": \"a\", \"op\": \"all_reduce\", \"max_bytes\": \"64k\",\n"
        "  \"algo\": \"recursive_doubling\"},\n"
        " {\"op\": \"*\", \"algo\": \"ring\", \"min_bytes\": 1024,\n"
        "  \"min_ranks\": 3, \"max_ranks\": 8, \"pow2\": false,\n"
        "  \"all_local\": true, \"transport\": \"tcp\"}\n"
        "]}";
    scomm_coll_policy_t pol;
    const scomm_coll_policy_rule_t *r;
    char err[320];

    ST_ASSERT_EQ(parse(good, &pol, err, sizeof(err)), 0);
    ST_ASSERT_EQ(pol.n, 2);
    ST_ASSERT(strcmp(pol.rules[0].id, "a") == 0);
    ST_ASSERT_EQ(pol.rules[0].max_bytes, 65536u);
    ST_ASSERT_EQ(pol.rules[0].op, (int)SCOMM_COLL_ALLREDUCE);
    ST_ASSERT(strcmp(pol.rules[1].id, "rule1") == 0);
    ST_ASSERT_EQ(pol.rules[1].op, -1);

    /* Matching: first rule wins; every condition counts. */
    r = scomm_coll_policy_match(&pol, SCOMM_COLL_ALLREDUCE, 65536, 2, 1,
                                SCOMM_COLL_POLICY_TL_SHM);
    ST_ASSERT((r != NULL) && (strcmp(r->id, "a") == 0));
    r = scomm_coll_policy_match(&pol, SCOMM_COLL_ALLREDUCE, 65537, 2, 1,
                                SCOMM_COLL_POLICY_TL_SHM);
    ST_ASSERT(r == NULL); /* rule1: 2 ranks < min_ranks 3 */
    r = scomm_coll_policy_match(&pol, SCOMM_COLL_ALLREDUCE, 65537, 3, 1,
                                SCOMM_COLL_POLICY_TL_TCP);
    ST_ASSERT((r != NULL) && (strcmp(r->id, "rule1") == 0));
    r = scomm_coll_policy_match(&pol, SCOMM_COLL_ALLREDUCE, 65537, 4, 1,
                                SCOMM_COLL_POLICY_TL_TCP);
    ST_ASSERT(r == NULL); /* pow2 */
    r = scomm_coll_policy_match(&pol, SCOMM_COLL_ALLREDUCE, 65537, 3, 0,
                                SCOMM_COLL_POLICY_TL_TCP);
    ST_ASSERT(r == NULL); /* all_local */
    r = scomm_coll_policy_match(&pol, SCOMM_COLL_ALLREDUCE, 65537, 3, 1,
                                SCOMM_COLL_POLICY_TL_SHM);
    ST_ASSERT(r == NULL); /* transport */
    r = scomm_coll_policy_match(&pol, SCOMM_COLL_BROADCAST, 4096, 5, 1,
                                SCOMM_COLL_POLICY_TL_TCP);
    ST_ASSERT(r == NULL); /* broadcast has no "ring": "*" skips it */
    r = scomm_coll_policy_match(&pol, SCOMM_COLL_ALLGATHER, 1024, 5, 1,
                                SCOMM_COLL_POLICY_TL_TCP);
    ST_ASSERT((r != NULL) && (strcmp(r->id, "rule1") == 0));
    r = scomm_coll_policy_match(&pol, SCOMM_COLL_ALLGATHER, 1023, 5, 1,
                                SCOMM_COLL_POLICY_TL_TCP);
    ST_ASSERT(r == NULL); /* min_bytes */
    scomm_coll_policy_free(&pol);

    /* Errors: what and where. */
    expect_error("{\"rules\": [\n  {\"op\": \"all_reduce\",,}\n]}",
                 "p.json:2:");
    expect_error("", "p.json:1:");
    expect_error("[]", "top level must be an object");
    expect_error("{\"rules\": [], \"extra\": 1}",
                 "unknown top-level key 'extra'");
    expect_error("{\"version\": 2, \"rules\": []}", "version must be 1");
    expect_error("{\"rules\": {}}", "\"rules\" must be an array");
    expect_error("{\"rules\": [1]}", "rules[0] is not an object");
    expect_error("{\"rules\": [{\"op\": \"all_reduce\", \"algo\": \"ring\", "
                 "\"mx_bytes\": 4}]}", "rules[0]: unknown key 'mx_bytes'");
    expect_error("{\"rules\": [{\"op\": \"allreduce\", \"algo\": \"ring\"}]}",
                 "rules[0] ('rule0').op must be an operation name");
    expect_error("{\"rules\": [{\"algo\": \"ring\"}]}", ".op must be");
    expect_error("{\"rules\": [{\"op\": \"broadcast\", \"algo\": \"ring\"}]}",
                 "'ring' is not an algorithm of broadcast");
    expect_error("{\"rules\": [{\"op\": \"*\", \"algo\": \"nosuch\"}]}",
                 "not an algorithm of any operation");
    expect_error("{\"rules\": [{\"op\": \"all_reduce\"}]}",
                 ".algo must be an algorithm name");
    expect_error("{\"rules\": [{\"op\": \"all_reduce\", \"algo\": \"ring\", "
                 "\"min_bytes\": -1}]}", ".min_bytes must be a byte count");
    expect_error("{\"rules\": [{\"op\": \"all_reduce\", \"algo\": \"ring\", "
                 "\"max_bytes\": \"lots\"}]}",
                 ".max_bytes must be a byte count");
    expect_error("{\"rules\": [{\"op\": \"all_reduce\", \"algo\": \"ring\", "
                 "\"min_bytes\": 9, \"max_bytes\": 8}]}",
                 "min_bytes 9 > max_bytes 8");
    expect_error("{\"rules\": [{\"op\": \"all_reduce\", \"algo\": \"ring\", "
                 "\"min_ranks\": 0}]}", ".min_ranks must be an integer");
    expect_error("{\"rules\": [{\"op\": \"all_reduce\", \"algo\": \"ring\", "
                 "\"min_ranks\": 4, \"max_ranks\": 2}]}",
                 "min_ranks 4 > max_ranks 2");
    expect_error("{\"rules\": [{\"op\": \"all_reduce\", \"algo\": \"ring\", "
                 "\"pow2\": 1}]}", ".pow2 must be true or false");
    expect_error("{\"rules\": [{\"op\": \"all_reduce\", \"algo\": \"ring\", "
                 "\"transport\": \"udp\"}]}", ".transport must be");
    expect_error("{\"rules\": [{\"id\": \"\", \"op\": \"all_reduce\", "
                 "\"algo\": \"ring\"}]}", ".id must be a string");
    expect_error("{\"rules\": [{\"op\": \"all_reduce\", \"op\": \"all_reduce\", "
                 "\"algo\": \"ring\"}]}", "p.json:1:");
    printf("ok: policy parsing, matching and 21 error cases\n");
}

/* ---- the selector on mock ranks ---- */

typedef struct {
    int                 rank;
    int                 port;
    scomm_status_t      st[3];
    scomm_coll_record_t rec[3];
    char                msg[400];
    int                 wrong;     /* elements off the expected sum */
} job_t;

static void *rank_main(void *arg)
{
    job_t *j = arg;
    scomm_init_opts_t o;
    scomm_comm_t *comm = NULL;
    float v[200];
    size_t counts[3] = {100, 1, 200}, i, k;

    memset(&o, 0, sizeof(o));
    o.field_mask = SCOMM_INIT_FIELD_RANK | SCOMM_INIT_FIELD_WORLD_SIZE |
                   SCOMM_INIT_FIELD_BACKEND | SCOMM_INIT_FIELD_MASTER_PORT |
                   SCOMM_INIT_FIELD_TIMEOUT;
    o.rank        = j->rank;
    o.world_size  = NR;
    o.backend     = "mock";
    o.master_port = j->port;
    o.timeout_ms  = 5000;
    if (scomm_init(&o, &comm) != SCOMM_OK) {
        j->st[0] = SCOMM_ERR_INTERNAL;
        return NULL;
    }
    for (k = 0; k < 3; k++) {
        for (i = 0; i < counts[k]; i++) {
            v[i] = (float)(j->rank + 1) * (float)(i + 1);
        }
        j->st[k] = scomm_all_reduce(v, v, counts[k], SCOMM_FLOAT32,
                                    SCOMM_SUM, comm);
        if (j->st[k] != SCOMM_OK) {
            snprintf(j->msg, sizeof(j->msg), "%s",
                     scomm_comm_last_error(comm));
            break;
        }
        (void)scomm_last_selection(comm, &j->rec[k]);
        for (i = 0; i < counts[k]; i++) {
            j->wrong += (v[i] != 6.0f * (float)(i + 1));
        }
    }
    scomm_comm_destroy(comm);
    return NULL;
}

static void run_ranks(job_t *jobs, int port)
{
    pthread_t th[NR];
    int r;

    scomm_coll_env_reload();
    for (r = 0; r < NR; r++) {
        memset(&jobs[r], 0, sizeof(jobs[r]));
        jobs[r].rank = r;
        jobs[r].port = port;
        ST_ASSERT_EQ(pthread_create(&th[r], NULL, rank_main, &jobs[r]), 0);
    }
    for (r = 0; r < NR; r++) {
        pthread_join(th[r], NULL);
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ST_ASSERT(f != NULL);
    ST_ASSERT(fputs(text, f) >= 0);
    ST_ASSERT_EQ(fclose(f), 0);
}

static void test_selector(void)
{
    char path[] = "/tmp/scomm_policy_XXXXXX";
    job_t jobs[NR];
    int fd = mkstemp(path), r;

    ST_ASSERT(fd >= 0);
    close(fd);
    /* 400 B -> rule "mid-ring" (ring); 4 B -> "few" (rabenseifner cannot
     * halve 1 element over 2 ranks: falls back); 800 B -> no rule. */
    write_file(path,
               "{\"rules\": [\n"
               " {\"id\": \"few\", \"op\": \"all_reduce\", \"max_bytes\": 8,\n"
               "  \"algo\": \"rabenseifner\", \"transport\": \"mock\"},\n"
               " {\"id\": \"mid-ring\", \"op\": \"all_reduce\",\n"
               "  \"min_bytes\": 9, \"max_bytes\": 400, \"max_ranks\": 3,\n"
               "  \"algo\": \"ring\"}\n"
               "]}\n");
    setenv("SCOMM_SELECTOR_CONFIG", path, 1);
    run_ranks(jobs, 42100);
    for (r = 0; r < NR; r++) {
        ST_ASSERT_OK(jobs[r].st[0]);
        ST_ASSERT_OK(jobs[r].st[1]);
        ST_ASSERT_OK(jobs[r].st[2]);
        ST_ASSERT_EQ(jobs[r].wrong, 0);
        ST_ASSERT(strcmp(jobs[r].rec[0].algo, "ring") == 0);
        ST_ASSERT(strcmp(jobs[r].rec[0].rule_id, "policy:mid-ring") == 0);
        ST_ASSERT(strstr(jobs[r].rec[0].reason, "SCOMM_SELECTOR_CONFIG rule "
                                                "'mid-ring'") != NULL);
        ST_ASSERT(strstr(jobs[r].rec[0].reason, "400 B") != NULL);
        ST_ASSERT(strncmp(jobs[r].rec[1].rule_id, "fallback:", 9) == 0);
        ST_ASSERT(strstr(jobs[r].rec[1].reason, "rabenseifner") != NULL);
        ST_ASSERT(strncmp(jobs[r].rec[2].rule_id, "policy:", 7) != 0);
    }
    printf("ok: policy rules chose '%s' (%s), fell back (%s), and left "
           "800 B to '%s'\n", jobs[0].rec[0].algo, jobs[0].rec[0].rule_id,
           jobs[0].rec[1].rule_id, jobs[0].rec[2].rule_id);

    /* A broken file: every collective refuses, saying where. */
    write_file(path, "{\"rules\": [\n  {\"op\": \"all_reduce\" \"algo\"}\n]}");
    run_ranks(jobs, 42101);
    for (r = 0; r < NR; r++) {
        ST_ASSERT_STATUS(jobs[r].st[0], SCOMM_ERR_BAD_CONFIG);
        ST_ASSERT(strstr(jobs[r].msg, path) != NULL);
        ST_ASSERT(strstr(jobs[r].msg, ":2:") != NULL);
    }
    printf("ok: a broken policy file: %s\n", jobs[0].msg);

    unlink(path);
    unsetenv("SCOMM_SELECTOR_CONFIG");
    scomm_coll_env_reload();
}

int main(void)
{
    test_parse();
    test_selector();
    printf("2 passed, 0 failed\n");
    return 0;
}
