/*
 * fail_listen.c - an LD_PRELOAD library for the ofi tests: listen() made
 * from inside libfabric fails with EADDRINUSE, as the kernel's does when
 * the port that bind(port 0) gave a socket was taken, before its listen(),
 * by a socket bound to that port explicitly with SO_REUSEADDR (what
 * happens to the tcp provider's listening socket while other jobs start).
 *
 *   FAIL_LISTEN=N       the first N such calls of the process fail
 *                       (-1: every one)
 *   FAIL_LISTEN_RANK=R  only in the process whose SCOMM_RANK is R
 *
 * Invariants:
 *  1. Only libfabric's calls fail (the caller's object, by dladdr, is
 *     libfabric): scomm's own listening sockets (bootstrap, tcp) and
 *     everything else listen as usual.
 *  2. A failed call has done nothing: the socket stays as it was, bound
 *     and not listening, as after the kernel's refusal.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dladdr, RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static atomic_int fail_count;

/* Exported: the project builds with hidden visibility. */
__attribute__((visibility("default"))) int listen(int fd, int backlog)
{
    static int (*real_listen)(int, int);
    const char *n = getenv("FAIL_LISTEN");
    const char *r = getenv("FAIL_LISTEN_RANK");
    const char *me = getenv("SCOMM_RANK");
    Dl_info dl;

    if (real_listen == NULL) {
        real_listen = (int (*)(int, int))dlsym(RTLD_NEXT, "listen");
    }
    if ((n != NULL) && ((r == NULL) || ((me != NULL) && !strcmp(r, me))) &&
        (dladdr(__builtin_return_address(0), &dl) != 0) &&
        (dl.dli_fname != NULL) && (strstr(dl.dli_fname, "libfabric"))) {
        int k = atomic_fetch_add(&fail_count, 1);

        if ((atoi(n) < 0) || (k < atoi(n))) {
            errno = EADDRINUSE;
            return -1;
        }
    }
    return real_listen(fd, backlog);
}
