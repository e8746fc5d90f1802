/*
 * test_tune.c - the tuned selector policy (src/coll/tuned.c) across real
 * processes: every rank must choose what rank 0's file says, whatever the
 * others' caches hold, and a bad file must change nothing but cost one
 * warning. Each case is a world of its own (the file is read at
 * scomm_init); SCOMM_TUNE_CACHE points each rank at its "cache":
 *
 *   agree     rank 0 has a good file, the others none: every rank runs
 *             all_reduce with "ring" and broadcast with "binomial", rules
 *             policy:t-ar / policy:t-bc, the reason naming the file
 *   lacking   the others have the good file, rank 0 none: every rank on
 *             the default rules
 *   corrupt   rank 0's file is not JSON: default rules everywhere, one
 *             warning on rank 0 naming the file and the syntax error
 *   foreign   rank 0's file was measured for 99 ranks: default rules, one
 *             warning naming world_size 99
 *   off       SCOMM_TUNE_CACHE=off on rank 0: default rules, no warning
 *   selector  SCOMM_SELECTOR_CONFIG set as well: its rule decides
 *             all_reduce everywhere, and the tuned file is not read
 *             (broadcast on the default rules)
 *
 * Data is checked against closed forms (sum of rank + 1).
 *
 * Usage: test_tune [-n NP] [-t SEC]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coll/coll.h"
#include "scomm.h"
#include "st_test.h"

typedef struct tcase {
    const char *name;
    const char *rank0;    /* SCOMM_TUNE_CACHE of rank 0 */
    const char *others;   /* ... of the others */
    const char *selector; /* SCOMM_SELECTOR_CONFIG, or NULL */
    const char *rule_ar;  /* expected rules, NULL: a default rule */
    const char *rule_bc;
    const char *warn;     /* in rank 0's one warning; NULL: no warning */
} tcase_t;

static char dir[256];

static void path_of(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *text)
{
    char p[320];
    FILE *f;

    path_of(p, sizeof(p), name);
    f = fopen(p, "w");
    ST_ASSERT(f != NULL);
    ST_ASSERT(fputs(text, f) >= 0);
    ST_ASSERT(fclose(f) == 0);
}

/* A policy file for np ranks measured on this machine (world_size
 * overridden by ws when > 0). */
static void write_policy(const char *name, int np, int ws)
{
    scomm_coll_tune_key_t k;
    char machine[512], text[2048];
    const char *tl = st_getenv_default("SCOMM_TRANSPORTS", "shm");

    memset(&k, 0, sizeof(k));
    scomm_coll_tune_cpu(k.cpu, sizeof(k.cpu));
    k.world_size = (ws > 0) ? ws : np;
    k.local_size = np;
    snprintf(k.transports, sizeof(k.transports), "%s",
             (strcmp(tl, "tcp") == 0) ? "tcp" : "shm");
    snprintf(k.version, sizeof(k.version), "%s", SCOMM_VERSION_STRING);
    ST_ASSERT(scomm_coll_tune_machine_json(&k, machine,
                                           sizeof(machine)) == 0);
    snprintf(text, sizeof(text),
             "{\"version\": 1, \"machine\": %s, \"rules\": [\n"
             " {\"id\": \"t-ar\", \"op\": \"all_reduce\", \"algo\": "
             "\"ring\"},\n"
             " {\"id\": \"t-bc\", \"op\": \"broadcast\", \"algo\": "
             "\"binomial\", \"min_ranks\": %d, \"max_ranks\": %d}\n]}\n",
             machine, np, np);
    write_file(name, text);
}

static void expect_rule(scomm_comm_t *comm, const char *want,
                        const char *algo, const char *file)
{
    scomm_coll_record_t rec;

    ST_ASSERT_OK(scomm_last_selection(comm, &rec));
    if (want != NULL) {
        if (strcmp(rec.rule_id, want) != 0) {
            fprintf(stderr, "rank %d: rule %s (%s), want %s\n",
                    scomm_rank(comm), rec.rule_id, rec.reason, want);
        }
        ST_ASSERT(strcmp(rec.rule_id, want) == 0);
        ST_ASSERT(strcmp(rec.algo, algo) == 0);
        if (file != NULL) {
            ST_ASSERT(strstr(rec.reason, file) != NULL);
        }
    } else {
        if (strncmp(rec.rule_id, "policy:", 7) == 0) {
            fprintf(stderr, "rank %d: rule %s (%s), want a default rule\n",
                    scomm_rank(comm), rec.rule_id, rec.reason);
        }
        ST_ASSERT(strncmp(rec.rule_id, "policy:", 7) != 0);
    }
}

/* Lines of the file at path holding needle. */
static int count_lines(const char *path, const char *needle)
{
    char line[1024];
    FILE *f = fopen(path, "r");
    int n = 0;

    ST_ASSERT(f != NULL);
    while (fgets(line, sizeof(line), f) != NULL) {
        n += (strstr(line, needle) != NULL);
    }
    fclose(f);
    return n;
}

static int run_case(int rank, int size, void *arg)
{
    const tcase_t *tc = arg;
    scomm_comm_t *comm = NULL;
    char cache[320], log[320], sel[320];
    float x[1021];
    unsigned char b[77];
    int saved = -1, fd, i;

    path_of(cache, sizeof(cache), (rank == 0) ? tc->rank0 : tc->others);
    setenv("SCOMM_TUNE_CACHE", (strcmp(cache + strlen(dir) + 1, "off") == 0)
                               ? "off" : cache, 1);
    if (tc->selector != NULL) {
        path_of(sel, sizeof(sel), tc->selector);
        setenv("SCOMM_SELECTOR_CONFIG", sel, 1);
    }
    if (rank == 0) {
        /* Rank 0's stderr into a file: the warning is counted below. */
        snprintf(log, sizeof(log), "%s/%s.rank0.log", dir, tc->name);
        fflush(stderr);
        saved = dup(2);
        fd    = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ST_ASSERT((saved >= 0) && (fd >= 0));
        ST_ASSERT(dup2(fd, 2) == 2);
        close(fd);
    }
    ST_ASSERT_OK(scomm_init_from_env(&comm));
    if (rank == 0) {
        fflush(stderr);
        ST_ASSERT(dup2(saved, 2) == 2);
        close(saved);
        if (tc->warn != NULL) {
            ST_ASSERT_EQ(count_lines(log, "tuned selector policy"), 1);
            ST_ASSERT_EQ(count_lines(log, tc->warn), 1);
            ST_ASSERT_EQ(count_lines(log, tc->rank0), 1);
        } else {
            ST_ASSERT_EQ(count_lines(log, "WARN"), 0);
        }
    }
    for (i = 0; i < 1021; i++) {
        x[i] = (float)(rank + 1);
    }
    ST_ASSERT_OK(scomm_all_reduce(x, x, 1021, SCOMM_FLOAT32, SCOMM_SUM, comm));
    for (i = 0; i < 1021; i++) {
        ST_ASSERT(x[i] == (float)(size * (size + 1) / 2));
    }
    expect_rule(comm, tc->rule_ar, "ring",
                (tc->selector == NULL) ? tc->rank0 : NULL);
    memset(b, (rank == size - 1) ? 0x3c : 0, sizeof(b));
    ST_ASSERT_OK(scomm_broadcast(b, sizeof(b), SCOMM_UINT8, size - 1, comm));
    for (i = 0; i < (int)sizeof(b); i++) {
        ST_ASSERT_EQ(b[i], 0x3c);
    }
    expect_rule(comm, tc->rule_bc, "binomial", tc->rank0);
    ST_ASSERT_OK(scomm_comm_destroy(comm));
    return 0;
}

int main(int argc, char **argv)
{
    const tcase_t cases[] = {
        {"agree", "good.json", "absent.json", NULL, "policy:t-ar",
         "policy:t-bc", NULL},
        {"lacking", "absent.json", "good.json", NULL, NULL, NULL, NULL},
        {"corrupt", "corrupt.json", "good.json", NULL, NULL, NULL,
         "corrupt.json:"},
        {"foreign", "foreign.json", "good.json", NULL, NULL, NULL,
         "world_size 99 (this run: "},
        {"off", "off", "good.json", NULL, NULL, NULL, NULL},
        {"selector", "good.json", "good.json", "sel.json", "policy:sel",
         NULL, NULL},
    };
    int np = 2, timeout = 60, i, rc, failed = 0, opt;

    while ((opt = getopt(argc, argv, "n:t:")) != -1) {
        if (opt == 'n') {
            np = atoi(optarg);
        } else if (opt == 't') {
            timeout = atoi(optarg);
        } else {
            fprintf(stderr, "usage: %s [-n NP] [-t SEC]\n", argv[0]);
            return 2;
        }
    }
    if ((np < 2) || (np > 16)) {
        fprintf(stderr, "usage: %s [-n NP 2..16] [-t SEC]\n", argv[0]);
        return 2;
    }
    snprintf(dir, sizeof(dir), "%s/scomm-tune-test.XXXXXX",
             st_getenv_default("TMPDIR", "/tmp"));
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    write_policy("good.json", np, 0);
    write_policy("foreign.json", np, 99);
    write_file("corrupt.json", "{\"version\": 1,\n \"rules\": [ {\"id\"\n");
    write_file("sel.json", "{\"version\": 1, \"rules\": [{\"id\": \"sel\", "
               "\"op\": \"all_reduce\", \"algo\": \"ring\"}]}\n");
    for (i = 0; i < (int)(sizeof(cases) / sizeof(cases[0])); i++) {
        rc = st_run_ranks(np, run_case, (void *)&cases[i], timeout);
        printf("%s %s\n", (rc == 0) ? "ok  " : "FAIL", cases[i].name);
        failed += (rc != 0);
    }
    if (failed == 0) {
        char cmd[300];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", dir);
        }
    }
    printf("%d passed, %d failed\n",
           (int)(sizeof(cases) / sizeof(cases[0])) - failed, failed);
    return (failed == 0) ? 0 : 1;
}
