/*
 * util.h - small services shared by every layer: clocks, deadlines, random
 * bytes, hashing, checked arithmetic, constant-time compares, fd and pidfd
 * helpers, and the parsers of booleans and sizes that every configuration
 * source (environment, preset files, control keys, the CLI) uses, so one
 * value means the same wherever it is written.
 */
#ifndef SCOMM_UTIL_H
#define SCOMM_UTIL_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define SCOMM_LIKELY(_x)   __builtin_expect(!!(_x), 1)
#define SCOMM_UNLIKELY(_x) __builtin_expect(!!(_x), 0)
#define SCOMM_MIN(_a, _b)  (((_a) < (_b)) ? (_a) : (_b))
#define SCOMM_MAX(_a, _b)  (((_a) > (_b)) ? (_a) : (_b))
#define SCOMM_ALIGN_UP(_x, _a) ((((_x) + (_a) - 1) / (_a)) * (_a))
#define SCOMM_CACHELINE 64
#define SCOMM_ARRAY_SIZE(_a) (sizeof(_a) / sizeof((_a)[0]))

static inline uint64_t scomm_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((uint64_t)ts.tv_sec * 1000000000ull) + (uint64_t)ts.tv_nsec;
}

/* Deadline for a timeout in ms from now; a non-positive timeout never ends. */
static inline uint64_t scomm_deadline_ms(int64_t timeout_ms)
{
    if (timeout_ms <= 0) {
        return UINT64_MAX;
    }
    return scomm_now_ns() + ((uint64_t)timeout_ms * 1000000ull);
}

/* Milliseconds left before a deadline, clamped to [0, cap_ms]. */
static inline int scomm_ms_left(uint64_t deadline, int cap_ms)
{
    uint64_t now = scomm_now_ns();
    uint64_t left;

    if (now >= deadline) {
        return 0;
    }
    left = (deadline - now + 999999ull) / 1000000ull;
    return (left > (uint64_t)cap_ms) ? cap_ms : (int)left;
}

static inline void scomm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static inline uint64_t scomm_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Multiplication that reports overflow instead of wrapping. */
static inline int scomm_mul_overflow(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

uint64_t scomm_hash64(const void *data, size_t len, uint64_t seed);
int scomm_random_bytes(void *buf, size_t len);
void scomm_random_hex(char *out, size_t nbytes); /* out: 2*nbytes+1 chars */
/* Compare two NUL-terminated secrets in time independent of where they
 * differ (only the length of b leaks). Returns 1 when equal. */
int scomm_secret_equal(const char *a, const char *b);
/* Compare len bytes in time independent of where they differ. Returns 1
 * when equal. */
int scomm_ct_equal(const void *a, const void *b, size_t len);
int scomm_set_nonblock(int fd);
/* pidfd_open(2) and pidfd_getfd(2) through syscall(2), which works where
 * the C library has no wrapper. -1 with errno set when the kernel refuses
 * (older than 5.3 / 5.6, or no permission). */
int scomm_pidfd_open(pid_t pid);
int scomm_pidfd_getfd(int pidfd, int fd);
/*
 * An asymmetric barrier between processes, with membarrier(2):
 * scomm_membarrier_register() (once per process; 1 when both the
 * registration and a first barrier worked, else 0) makes this process one
 * that every later scomm_membarrier_global() -- in any registered
 * process -- orders: on return, every running thread of a registered
 * process has passed a full memory barrier. A publisher in such a process
 * may then skip its own fence before looking at a sleeper's flag, as long
 * as the sleeper calls scomm_membarrier_global() after raising it. Both
 * return at once where the kernel lacks the calls (older than 4.16, or a
 * filter refuses them).
 */
int scomm_membarrier_register(void);
void scomm_membarrier_global(void);
/* 1 when fd has one of events now (poll(2) without waiting; a pidfd:
 * POLLIN once its process exited), else 0. */
int scomm_fd_ready(int fd, short events);
/* Write {fd, events} at fds[n] when n < max (a transport's poll_fds);
 * returns the new count. */
int scomm_pollfd_add(struct pollfd *fds, int n, int max, int fd,
                     short events);
/* Parse "123", "64k", "4m", "1g" (powers of 1024; also "4kb", "4KiB").
 * Returns 0 on success. */
int scomm_parse_size(const char *text, uint64_t *out);
/* Parse a boolean, case-insensitive: 1, y, yes, true, on -> 1; 0, n, no,
 * false, off -> 0; anything else (NULL included) -> -1. */
int scomm_parse_bool(const char *text);

#endif /* SCOMM_UTIL_H */
