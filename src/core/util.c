/*
 * util.c - out-of-line helpers of util.h.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Numbers of the generic syscall table (x86-64 and aarch64 alike), for C
 * libraries that predate them. */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

uint64_t scomm_hash64(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h             = seed ^ 0xcbf29ce484222325ull;
    uint64_t st;
    size_t i;

    /* FNV-1a over the bytes, then one splitmix round to spread the bits. */
    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    st = h;
    return scomm_splitmix64(&st);
}

int scomm_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    ssize_t n;

    while (len > 0) {
        n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void scomm_random_hex(char *out, size_t nbytes)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[64];
    uint64_t st;
    size_t i;

    if (nbytes > sizeof(raw)) {
        nbytes = sizeof(raw);
    }
    if (scomm_random_bytes(raw, nbytes) != 0) {
        /* getrandom cannot fail on Linux >= 3.17 once the pool is ready;
         * fall back to a clock-seeded generator rather than abort. */
        st = (uint64_t)getpid() ^ (uint64_t)time(NULL) ^ (uint64_t)clock();
        for (i = 0; i < nbytes; i++) {
            raw[i] = (unsigned char)scomm_splitmix64(&st);
        }
    }
    for (i = 0; i < nbytes; i++) {
        out[2 * i]     = digits[raw[i] >> 4];
        out[2 * i + 1] = digits[raw[i] & 15];
    }
    out[2 * nbytes] = '\0';
}

int scomm_secret_equal(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    volatile unsigned char diff = (unsigned char)(la != lb);
    size_t i;

    for (i = 0; i < lb; i++) {
        diff |= (unsigned char)(((i < la) ? a[i] : 0) ^ b[i]);
    }
    return diff == 0;
}

int scomm_ct_equal(const void *a, const void *b, size_t len)
{
    const unsigned char *pa = a, *pb = b;
    volatile unsigned char diff = 0;
    size_t i;

    for (i = 0; i < len; i++) {
        diff |= (unsigned char)(pa[i] ^ pb[i]);
    }
    return diff == 0;
}

int scomm_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int scomm_pidfd_getfd(int pidfd, int fd)
{
    return (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);
}

/* membarrier(2) commands (linux/membarrier.h, since 4.16). */
#define SCOMM_MB_GLOBAL_EXPEDITED          (1 << 1)
#define SCOMM_MB_REGISTER_GLOBAL_EXPEDITED (1 << 2)

static int scomm_mb_state; /* 0 untried, 1 works, -1 refused */
static pthread_once_t scomm_mb_once = PTHREAD_ONCE_INIT;

static void scomm_mb_try(void)
{
#if defined(SYS_membarrier)
    if ((syscall(SYS_membarrier, SCOMM_MB_REGISTER_GLOBAL_EXPEDITED, 0, 0) ==
         0) &&
        (syscall(SYS_membarrier, SCOMM_MB_GLOBAL_EXPEDITED, 0, 0) == 0)) {
        scomm_mb_state = 1;
        return;
    }
#endif
    scomm_mb_state = -1;
}

int scomm_membarrier_register(void)
{
    pthread_once(&scomm_mb_once, scomm_mb_try);
    return scomm_mb_state > 0;
}

void scomm_membarrier_global(void)
{
#if defined(SYS_membarrier)
    if (scomm_mb_state > 0) {
        (void)syscall(SYS_membarrier, SCOMM_MB_GLOBAL_EXPEDITED, 0, 0);
    }
#endif
}

int scomm_fd_ready(int fd, short events)
{
    struct pollfd pfd;

    pfd.fd      = fd;
    pfd.events  = events;
    pfd.revents = 0;
    return poll(&pfd, 1, 0) > 0;
}

int scomm_pollfd_add(struct pollfd *fds, int n, int max, int fd,
                     short events)
{
    if (n < max) {
        fds[n].fd      = fd;
        fds[n].events  = events;
        fds[n].revents = 0;
        n++;
    }
    return n;
}

int scomm_set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL, 0);

    if (flags < 0) {
        return -1;
    }
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int scomm_parse_size(const char *text, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;
    uint64_t mult = 1;

    if ((text == NULL) || !isdigit((unsigned char)text[0])) {
        return -1;
    }
    errno = 0;
    v     = strtoull(text, &end, 10);
    if (errno != 0) {
        return -1;
    }
    switch (tolower((unsigned char)*end)) {
    case '\0':
        break;
    case 'k':
        mult = 1ull << 10;
        end++;
        break;
    case 'm':
        mult = 1ull << 20;
        end++;
        break;
    case 'g':
        mult = 1ull << 30;
        end++;
        break;
    default:
        return -1;
    }
    if ((mult > 1) && ((*end == 'i') || (*end == 'I')) &&
        ((end[1] == 'b') || (end[1] == 'B'))) {
        end++; /* "KiB" */
    }
    if ((*end == 'b') || (*end == 'B')) {
        end++;
    }
    if ((*end != '\0') || (v > UINT64_MAX / mult)) {
        return -1;
    }
    *out = (uint64_t)v * mult;
    return 0;
}

int scomm_parse_bool(const char *text)
{
    static const char *const yes[] = {"1", "y", "yes", "true", "on"};
    static const char *const no[]  = {"0", "n", "no", "false", "off"};
    size_t i;

    if (text == NULL) {
        return -1;
    }
    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            return 1;
        }
        if (strcasecmp(text, no[i]) == 0) {
            return 0;
        }
    }
    return -1;
}
