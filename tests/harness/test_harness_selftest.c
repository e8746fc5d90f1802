/*
 * test_harness_selftest.c - checks the test harness itself (st_test.h,
 * st_ranks.c) without libscomm: build with -DST_NO_SCOMM.
 *
 * It runs st_run_ranks() on rank functions whose outcome is known and
 * checks the result: all ranks pass -> 0; one rank fails, asserts, or is
 * killed -> 1; one rank skips -> 77; a rank that sleeps past the timeout
 * is killed together with the process it started, and the run returns 1
 * within about a second of the timeout. It also checks that every rank
 * sees the bootstrap environment, that st_main_ranks() parses its
 * arguments, and that the data pattern catches a single flipped byte and
 * a shifted buffer.
 *
 * Invariants: the program prints one "ok" line per check and exits 0 when
 * all pass; the first failed check prints what was expected and exits 1.
 * The ranks' own failure lines on stderr are expected output.
 */
#include "st_test.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>

static int st_checks;

#define CHECK(_cond, _what)                                                 \
    do {                                                                    \
        ST_ASSERT(_cond);                                                   \
        st_checks++;                                                        \
        printf("ok %d - %s\n", st_checks, (_what));                         \
        fflush(stdout);                                                     \
    } while (0)

static double now_sec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------------ */
/* Rank functions                                                            */
/* ------------------------------------------------------------------------ */

/* Checks the environment st_run_ranks gives every rank. */
static int rank_env(int rank, int size, void *arg)
{
    const char *token = getenv("SCOMM_JOB_TOKEN");
    int         port  = atoi(st_getenv_default("SCOMM_MASTER_PORT", "0"));
    size_t      k;

    (void)arg;
    ST_ASSERT_EQ(atoi(st_getenv_default("SCOMM_RANK", "-1")), rank);
    ST_ASSERT_EQ(atoi(st_getenv_default("SCOMM_WORLD_SIZE", "-1")), size);
    ST_ASSERT_EQ(atoi(st_getenv_default("SCOMM_LOCAL_RANK", "-1")), rank);
    ST_ASSERT_EQ(atoi(st_getenv_default("SCOMM_LOCAL_SIZE", "-1")), size);
    ST_ASSERT(strcmp(st_getenv_default("SCOMM_MASTER_ADDR", ""),
                     "127.0.0.1") == 0);
    ST_ASSERT((port > 0) && (port < 65536));
    ST_ASSERT(token != NULL);
    ST_ASSERT_EQ(strlen(token), 32);
    for (k = 0; k < 32; k++) {
        ST_ASSERT(strchr("0123456789abcdef", token[k]) != NULL);
    }
    return 0;
}

static int rank_pass(int rank, int size, void *arg)
{
    (void)rank;
    (void)size;
    (void)arg;
    return 0;
}

/* Rank spec[0] returns spec[1]; the other ranks return 0. */
static int rank_return(int rank, int size, void *arg)
{
    const int *spec = arg;

    (void)size;
    return (rank == spec[0]) ? spec[1] : 0;
}

/* The last rank fails an assertion. */
static int rank_assert(int rank, int size, void *arg)
{
    (void)arg;
    if (rank == size - 1) {
        ST_ASSERT_EQ(rank + 1, 42);
    }
    return 0;
}

/* Rank 0 calls ST_SKIP. */
static int rank_skip(int rank, int size, void *arg)
{
    (void)size;
    (void)arg;
    if (rank == 0) {
        ST_SKIP("this rank has nothing to test");
    }
    return 0;
}

/* Rank 1 dies of a signal (SIGKILL, so that no core file is written). */
static int rank_killed(int rank, int size, void *arg)
{
    (void)size;
    (void)arg;
    if (rank == 1) {
        raise(SIGKILL);
    }
    return 0;
}

/*
 * Rank 1 starts a grandchild that sleeps, sends its pid through the pipe
 * in *arg, and then sleeps itself far past the timeout.
 */
static int rank_hang(int rank, int size, void *arg)
{
    const int *fds = arg;

    (void)size;
    if (rank == 1) {
        pid_t   child = fork();
        ssize_t n;

        if (child == 0) {
            sleep(60);
            _exit(0);
        }
        ST_ASSERT(child > 0);
        n = write(fds[1], &child, sizeof(child));
        ST_ASSERT_EQ(n, sizeof(child));
        sleep(60);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Checks                                                                    */
/* ------------------------------------------------------------------------ */

static void check_results(void)
{
    int spec[2];

    CHECK(st_run_ranks(3, rank_env, NULL, 10) == 0,
          "3 ranks see SCOMM_RANK/WORLD_SIZE/LOCAL_*/MASTER_*/JOB_TOKEN");
    CHECK(st_run_ranks(4, rank_pass, NULL, 10) == 0,
          "all ranks pass -> 0");
    CHECK(st_run_ranks(1, rank_pass, NULL, 10) == 0, "one rank passes -> 0");

    spec[0] = 2;
    spec[1] = 1;
    CHECK(st_run_ranks(4, rank_return, spec, 10) == 1,
          "rank 2 returns 1 -> 1");
    spec[0] = 0;
    spec[1] = 77;
    CHECK(st_run_ranks(3, rank_return, spec, 10) == ST_EXIT_SKIP,
          "rank 0 returns 77, others 0 -> 77");
    spec[0] = 1;
    spec[1] = 256;
    CHECK(st_run_ranks(2, rank_return, spec, 10) == 1,
          "rank 1 returns 256 (not an exit code) -> 1");
    CHECK(st_run_ranks(3, rank_assert, NULL, 10) == 1,
          "a failed ST_ASSERT_EQ in the last rank -> 1");
    CHECK(st_run_ranks(2, rank_skip, NULL, 10) == ST_EXIT_SKIP,
          "ST_SKIP in rank 0 -> 77");
    CHECK(st_run_ranks(3, rank_killed, NULL, 10) == 1,
          "rank 1 killed by SIGKILL -> 1");
    CHECK(st_run_ranks(0, rank_pass, NULL, 10) == 1,
          "0 ranks is refused -> 1");
    CHECK(st_run_ranks(2, NULL, NULL, 10) == 1,
          "a NULL rank function is refused -> 1");
}

static void check_timeout(void)
{
    int       fds[2];
    pid_t     grandchild = 0;
    double    t0;
    double    elapsed;
    int       status = 0;
    int       result;
    int       tries;
    ssize_t   n;

    /* Become the subreaper so the orphaned grandchild is ours to wait for
     * and its fate can be checked. */
    ST_ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
    ST_ASSERT_EQ(pipe(fds), 0);

    t0      = now_sec();
    result  = st_run_ranks(3, rank_hang, fds, 2);
    elapsed = now_sec() - t0;
    CHECK(result == 1, "a rank sleeping past the 2 s timeout -> 1");
    CHECK((elapsed >= 1.9) && (elapsed < 3.0),
          "the timed-out run ends within ~3 s");

    close(fds[1]);
    n = read(fds[0], &grandchild, sizeof(grandchild));
    close(fds[0]);
    ST_ASSERT_EQ(n, sizeof(grandchild));

    /* The grandchild must have been killed with the group: wait up to 1 s
     * for it (it is ours, as subreaper). */
    for (tries = 0; tries < 100; tries++) {
        pid_t got = waitpid(grandchild, &status, WNOHANG);

        if (got == grandchild) {
            break;
        }
        ST_ASSERT_EQ(got, 0);
        usleep(10000);
    }
    CHECK(WIFSIGNALED(status) && (WTERMSIG(status) == SIGKILL),
          "the timed-out rank's grandchild was killed with the group");
    ST_ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0), 0);
}

static void check_main_ranks(void)
{
    char  prog[] = "selftest";
    char  n3[]   = "-n";
    char  v3[]   = "3";
    char  t5[]   = "-t5";
    char  bad[]  = "-x";
    char  n0[]   = "-n0";
    char *ok_argv[]   = {prog, n3, v3, t5, NULL};
    char *bad_argv[]  = {prog, bad, NULL};
    char *zero_argv[] = {prog, n0, NULL};
    char *none_argv[] = {prog, NULL};
    int   spec[2]     = {2, 1};

    CHECK(st_main_ranks(4, ok_argv, rank_env, NULL) == 0,
          "st_main_ranks: -n 3 -t5 runs 3 ranks");
    CHECK(st_main_ranks(4, ok_argv, rank_return, spec) == 1,
          "st_main_ranks: -n 3 includes rank 2");
    CHECK(st_main_ranks(1, none_argv, rank_return, spec) == 0,
          "st_main_ranks: the default is 2 ranks");
    CHECK(st_main_ranks(2, bad_argv, rank_pass, NULL) == 2,
          "st_main_ranks: an unknown option -> 2");
    CHECK(st_main_ranks(2, zero_argv, rank_pass, NULL) == 2,
          "st_main_ranks: -n0 -> 2");
}

static void check_getenv(void)
{
    setenv("ST_SELFTEST_SET", "value", 1);
    setenv("ST_SELFTEST_EMPTY", "", 1);
    unsetenv("ST_SELFTEST_UNSET");
    CHECK(strcmp(st_getenv_default("ST_SELFTEST_SET", "d"), "value") == 0,
          "st_getenv_default: a set variable");
    CHECK(strcmp(st_getenv_default("ST_SELFTEST_EMPTY", "d"), "d") == 0,
          "st_getenv_default: an empty variable gives the default");
    CHECK(strcmp(st_getenv_default("ST_SELFTEST_UNSET", "d"), "d") == 0,
          "st_getenv_default: an unset variable gives the default");
}

static void check_pattern(void)
{
    const size_t   size = (1u << 20) + 13;
    unsigned char *a    = malloc(size + 8);
    unsigned char *b    = malloc(size + 8);
    const size_t   flips[] = {0, 1, 7, 8, 9, 4095, 4096, 524287,
                              (1u << 20) + 12};
    size_t         k;
    size_t         len;
    int            same_words = 0;

    ST_ASSERT((a != NULL) && (b != NULL));

    st_fill_pattern(a, size, 42);
    CHECK(st_check_pattern(a, size, 42) == SIZE_MAX,
          "pattern: a filled buffer checks clean");
    st_fill_pattern(b, size, 42);
    CHECK(memcmp(a, b, size) == 0, "pattern: the same seed, the same bytes");

    for (k = 0; k < sizeof(flips) / sizeof(flips[0]); k++) {
        a[flips[k]] ^= 0x10;
        ST_ASSERT_EQ(st_check_pattern(a, size, 42), flips[k]);
        a[flips[k]] ^= 0x10;
    }
    CHECK(st_check_pattern(a, size, 42) == SIZE_MAX,
          "pattern: a single flipped bit is found at its exact index");

    /* Every byte value change is caught, not just one bit. */
    a[12345] = (unsigned char)(a[12345] + 1);
    CHECK(st_check_pattern(a, size, 42) == 12345,
          "pattern: a byte off by one is found");
    a[12345] = (unsigned char)(a[12345] - 1);

    CHECK(st_check_pattern(a, size, 43) != SIZE_MAX,
          "pattern: another seed does not match");
    CHECK(st_check_pattern(a + 1, size - 1, 42) != SIZE_MAX,
          "pattern: a buffer shifted by 1 byte does not match");
    CHECK(st_check_pattern(a + 8, size - 8, 42) != SIZE_MAX,
          "pattern: a buffer shifted by one word does not match");

    /* Words must differ from each other, or a copy of the wrong word
     * would go unnoticed. */
    for (k = 8; k + 8 <= 8192; k += 8) {
        if (memcmp(a + k, a + k - 8, 8) == 0) {
            same_words++;
        }
    }
    CHECK(same_words == 0, "pattern: neighbouring words differ");

    /* Odd lengths: the tail is generated and checked too, and a prefix of
     * a pattern is the pattern of the shorter length. */
    for (len = 0; len <= 17; len++) {
        memset(b, 0xa5, 32);
        st_fill_pattern(b, len, 7);
        ST_ASSERT_EQ(st_check_pattern(b, len, 7), SIZE_MAX);
        ST_ASSERT_EQ(b[len], 0xa5);
        ST_ASSERT_EQ(st_check_pattern(b, len + 1, 7), len);
        if (len > 0) {
            b[len - 1] ^= 0x80;
            ST_ASSERT_EQ(st_check_pattern(b, len, 7), len - 1);
        }
    }
    st_fill_pattern(b, 100, 7);
    CHECK(st_check_pattern(b, 37, 7) == SIZE_MAX,
          "pattern: lengths 0..17 fill and check exactly, no overrun");
    CHECK(st_check_pattern(NULL, 0, 1) == SIZE_MAX,
          "pattern: an empty buffer matches");

    free(a);
    free(b);
}

int main(void)
{
    /* Keep the "ok" lines in order with the ranks' stderr. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    check_results();
    check_timeout();
    check_main_ranks();
    check_getenv();
    check_pattern();
    printf("all %d checks passed\n", st_checks);
    return 0;
}
