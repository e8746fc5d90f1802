/*
 * st_test.h - assertions and the multi-rank runner of scomm's tests.
 *
 * Modeled on libuv's test runner and fabtests: every test is its own
 * program, a failed assertion prints where and why and ends the process
 * with _exit(1), and exit code 77 (ST_EXIT_SKIP) means "skipped" (ctest's
 * SKIP_RETURN_CODE). A multi-rank test runs its rank function in N forked
 * processes with st_run_ranks(); its main is usually one line:
 *
 *     int main(int argc, char **argv)
 *     {
 *         return st_main_ranks(argc, argv, my_rank_fn, NULL);
 *     }
 *
 * The assertions are usable in the parent and in the ranks alike. Inside a
 * rank their message starts with "rank R: " (from SCOMM_RANK). They flush
 * stdio before _exit() so nothing the test printed is lost.
 *
 * The status assertions (ST_ASSERT_OK, ST_ASSERT_STATUS) need scomm.h and
 * libscomm; compile with -DST_NO_SCOMM to leave them out, as the harness
 * selftest does.
 */
#ifndef ST_TEST_H
#define ST_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Exit codes and limits                                                     */
/* ------------------------------------------------------------------------ */

/** Exit code of a skipped test (ctest SKIP_RETURN_CODE). */
#define ST_EXIT_SKIP 77

/** Largest number of ranks st_run_ranks() accepts. */
#define ST_MAX_RANKS 1024

/* ------------------------------------------------------------------------ */
/* Failure reporting (internal to the macros below)                         */
/* ------------------------------------------------------------------------ */

#if defined(__GNUC__)
#define ST_NORETURN_ __attribute__((noreturn))
#define ST_PRINTF_(_fmt, _args) __attribute__((format(printf, _fmt, _args)))
#else
#define ST_NORETURN_
#define ST_PRINTF_(_fmt, _args)
#endif

/*
 * Print "[rank R: ]file:line: message" to stderr, flush every stdio stream
 * and end the process with exit code 1.
 */
static inline ST_NORETURN_ ST_PRINTF_(3, 4)
void st__fail(const char *file, int line, const char *fmt, ...)
{
    const char *rank = getenv("SCOMM_RANK");
    va_list     ap;

    if ((rank != NULL) && (rank[0] != '\0')) {
        fprintf(stderr, "rank %s: ", rank);
    }
    fprintf(stderr, "%s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(NULL);
    _exit(1);
}

/* ------------------------------------------------------------------------ */
/* Assertions                                                                */
/* ------------------------------------------------------------------------ */

/** Fail unless cond is true. */
#define ST_ASSERT(_cond)                                                    \
    do {                                                                    \
        if (!(_cond)) {                                                     \
            st__fail(__FILE__, __LINE__, "ST_ASSERT(%s) failed", #_cond);   \
        }                                                                   \
    } while (0)

/** Fail unless the integers a and b are equal; prints both values. */
#define ST_ASSERT_EQ(_a, _b)                                                \
    do {                                                                    \
        long long st_a_ = (long long)(_a);                                  \
        long long st_b_ = (long long)(_b);                                  \
        if (st_a_ != st_b_) {                                               \
            st__fail(__FILE__, __LINE__,                                    \
                     "ST_ASSERT_EQ(%s, %s) failed: %lld != %lld",           \
                     #_a, #_b, st_a_, st_b_);                               \
        }                                                                   \
    } while (0)

/** Fail if the integers a and b are equal; prints the value. */
#define ST_ASSERT_NE(_a, _b)                                                \
    do {                                                                    \
        long long st_a_ = (long long)(_a);                                  \
        long long st_b_ = (long long)(_b);                                  \
        if (st_a_ == st_b_) {                                               \
            st__fail(__FILE__, __LINE__,                                    \
                     "ST_ASSERT_NE(%s, %s) failed: both are %lld",          \
                     #_a, #_b, st_a_);                                      \
        }                                                                   \
    } while (0)

/** Print "SKIP: reason" and end the process (or rank) with exit code 77. */
#define ST_SKIP(_reason)                                                    \
    do {                                                                    \
        printf("SKIP: %s\n", (_reason));                                    \
        fflush(NULL);                                                       \
        _exit(ST_EXIT_SKIP);                                                \
    } while (0)

#ifndef ST_NO_SCOMM
#include "scomm.h"

/** Fail unless status is SCOMM_OK; prints its name and scomm_last_error(). */
#define ST_ASSERT_OK(_status)                                               \
    do {                                                                    \
        scomm_status_t st_s_ = (_status);                                   \
        if (st_s_ != SCOMM_OK) {                                            \
            const char *st_e_ = scomm_last_error();                         \
            st__fail(__FILE__, __LINE__,                                    \
                     "ST_ASSERT_OK(%s) failed: %s (%d): %s", #_status,      \
                     scomm_status_name(st_s_), (int)st_s_,                  \
                     (st_e_ != NULL) ? st_e_ : "");                         \
        }                                                                   \
    } while (0)

/** Fail unless status equals expected; prints both names. */
#define ST_ASSERT_STATUS(_status, _expected)                                \
    do {                                                                    \
        scomm_status_t st_s_ = (_status);                                   \
        scomm_status_t st_x_ = (_expected);                                 \
        if (st_s_ != st_x_) {                                               \
            const char *st_e_ = scomm_last_error();                         \
            st__fail(__FILE__, __LINE__,                                    \
                     "ST_ASSERT_STATUS(%s, %s) failed: got %s (%d), "       \
                     "expected %s (%d); last error: %s", #_status,          \
                     #_expected, scomm_status_name(st_s_), (int)st_s_,      \
                     scomm_status_name(st_x_), (int)st_x_,                  \
                     (st_e_ != NULL) ? st_e_ : "");                         \
        }                                                                   \
    } while (0)
#endif /* ST_NO_SCOMM */

/* ------------------------------------------------------------------------ */
/* Multi-rank runner (st_ranks.c)                                            */
/* ------------------------------------------------------------------------ */

/**
 * Body of one rank. Returns the rank's exit code: 0 pass, ST_EXIT_SKIP
 * skip, anything else fail (values outside 0..255 count as 1).
 */
typedef int (*st_rank_fn)(int rank, int size, void *arg);

/**
 * Run fn in nranks forked processes (1..ST_MAX_RANKS) that share one new
 * process group. Each rank gets SCOMM_RANK, SCOMM_WORLD_SIZE,
 * SCOMM_LOCAL_RANK, SCOMM_LOCAL_SIZE, SCOMM_MASTER_ADDR=127.0.0.1,
 * SCOMM_MASTER_PORT (a free port) and SCOMM_JOB_TOKEN (fresh, random) in
 * its environment, calls fn(rank, nranks, arg) and exits with its value.
 *
 * After timeout_sec seconds (none when <= 0) the ranks still running are
 * named on stderr and the whole group, grandchildren included, gets
 * SIGKILL. The group also gets SIGKILL once all ranks have exited, so no
 * test leaves processes behind.
 *
 * @return 0 if every rank returned 0; ST_EXIT_SKIP if some rank returned
 *         ST_EXIT_SKIP and none failed; 1 otherwise, after printing one
 *         line per failed rank ("rank R: exit S", "rank R: killed by
 *         signal N") to stderr.
 */
int st_run_ranks(int nranks, st_rank_fn fn, void *arg, int timeout_sec);

/**
 * st_run_ranks() for fault tests: rank `victim` may be killed, stopped or
 * fail without failing the run; the run ends when every other rank has
 * exited (the victim is then SIGKILLed with the group).
 */
int st_run_ranks_victim(int nranks, st_rank_fn fn, void *arg,
                        int timeout_sec, int victim);

/**
 * main() of a multi-rank test: parses "-n N" (ranks, default 2) and
 * "-t SEC" (timeout, default 60) and returns st_run_ranks(N, fn, arg, SEC);
 * prints usage and returns 2 on bad arguments. With the single argument
 * "--from-env" the process is one rank started by a launcher (mpirun,
 * srun, torchrun, tests/cluster): fn(rank, size, arg) runs once with the
 * launcher's rank and size, and its result is the exit code.
 */
int st_main_ranks(int argc, char **argv, st_rank_fn fn, void *arg);

/** getenv(name), or def when the variable is unset or empty. */
const char *st_getenv_default(const char *name, const char *def);

/* ------------------------------------------------------------------------ */
/* Data patterns                                                             */
/* ------------------------------------------------------------------------ */

/**
 * Fill buf with a deterministic pseudo-random pattern: byte i is byte
 * (i % 8) of splitmix64(seed, i / 8), little-endian, so every byte depends
 * on its position and a buffer shifted by any offset does not match.
 */
void st_fill_pattern(void *buf, size_t bytes, uint64_t seed);

/**
 * Check buf against st_fill_pattern(.., bytes, seed).
 * @return index of the first mismatching byte, or SIZE_MAX if all match.
 */
size_t st_check_pattern(const void *buf, size_t bytes, uint64_t seed);

#ifdef __cplusplus
}
#endif

#endif /* ST_TEST_H */
