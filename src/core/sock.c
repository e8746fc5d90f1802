/*
 * sock.c - see sock.h.
 */
#include "sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int scomm_sock_pick_local(const char *ifname, const char *knob,
                          const char *master, int port,
                          struct sockaddr_storage *ss, socklen_t *len,
                          char *err, size_t errlen)
{
    struct sockaddr_storage ms;
    struct ifaddrs *ifa = NULL, *i;
    socklen_t mlen;
    int fd;

    memset(ss, 0, sizeof(*ss));
    if (ifname[0] != '\0') {
        if (getifaddrs(&ifa) != 0) {
            snprintf(err, errlen, "getifaddrs: %s", strerror(errno));
            return -1;
        }
        for (i = ifa; i != NULL; i = i->ifa_next) {
            if ((i->ifa_addr != NULL) && (strcmp(i->ifa_name, ifname) == 0) &&
                ((i->ifa_addr->sa_family == AF_INET) ||
                 (i->ifa_addr->sa_family == AF_INET6))) {
                *len = (i->ifa_addr->sa_family == AF_INET)
                           ? sizeof(struct sockaddr_in)
                           : sizeof(struct sockaddr_in6);
                memcpy(ss, i->ifa_addr, *len);
                break;
            }
        }
        freeifaddrs(ifa);
        if (i == NULL) {
            snprintf(err, errlen, "%s=%s: no such interface with an IP "
                     "address", knob, ifname);
            return -1;
        }
    } else {
        /* The interface of the route to the master. */
        if (scomm_sock_resolve(master, port, &ms, &mlen, err, errlen) != 0) {
            return -1;
        }
        fd = socket(ms.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if ((fd < 0) || (connect(fd, (struct sockaddr *)&ms, mlen) != 0)) {
            snprintf(err, errlen, "no route to master %s: %s", master,
                     strerror(errno));
            if (fd >= 0) {
                close(fd);
            }
            return -1;
        }
        *len = sizeof(*ss);
        getsockname(fd, (struct sockaddr *)ss, len);
        close(fd);
    }
    scomm_sock_set_port(ss, 0);
    return 0;
}

int scomm_sock_resolve(const char *host, int port,
                       struct sockaddr_storage *ss, socklen_t *len,
                       char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family   = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rc = getaddrinfo(host, portstr, &hints, &res);
    if ((rc != 0) || (res == NULL)) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host,
                 gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int scomm_sock_listen(const struct sockaddr_storage *ss, socklen_t len,
                      char *err, size_t errlen)
{
    int one = 1;
    int fd;

    fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) != 0) {
        snprintf(err, errlen, "bind: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, SOMAXCONN) != 0) {
        snprintf(err, errlen, "listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int scomm_sock_wait(int fd, short events, uint64_t deadline)
{
    struct pollfd pfd;
    int rc;

    for (;;) {
        pfd.fd      = fd;
        pfd.events  = events;
        pfd.revents = 0;
        rc = poll(&pfd, 1, scomm_ms_left(deadline, 1000));
        if (rc > 0) {
            return SCOMM_SOCK_OK;
        }
        if ((rc < 0) && (errno != EINTR)) {
            return SCOMM_SOCK_ERROR;
        }
        if (scomm_now_ns() >= deadline) {
            return SCOMM_SOCK_TIMEOUT;
        }
    }
}

int scomm_sock_connect(const struct sockaddr_storage *ss, socklen_t len,
                       uint64_t deadline, int retry, int *fd_p)
{
    uint64_t backoff_ms = 5;
    socklen_t elen;
    int fd, rc, soerr;

    for (;;) {
        fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    0);
        if (fd < 0) {
            return SCOMM_SOCK_ERROR;
        }
        rc = connect(fd, (const struct sockaddr *)ss, len);
        if ((rc != 0) && (errno == EINPROGRESS)) {
            rc = scomm_sock_wait(fd, POLLOUT, deadline);
            if (rc == SCOMM_SOCK_OK) {
                elen  = sizeof(soerr);
                soerr = 0;
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen);
                rc = (soerr == 0) ? 0 : -1;
                errno = soerr;
            } else if (rc == SCOMM_SOCK_TIMEOUT) {
                close(fd);
                return SCOMM_SOCK_TIMEOUT;
            }
        }
        if (rc == 0) {
            *fd_p = fd;
            return SCOMM_SOCK_OK;
        }
        soerr = errno;
        close(fd);
        if (!retry || ((soerr != ECONNREFUSED) && (soerr != ECONNRESET) &&
                       (soerr != EHOSTUNREACH) && (soerr != ENETUNREACH) &&
                       (soerr != ETIMEDOUT) && (soerr != EAGAIN))) {
            errno = soerr;
            return SCOMM_SOCK_ERROR;
        }
        if (scomm_now_ns() + backoff_ms * 1000000ull >= deadline) {
            return SCOMM_SOCK_TIMEOUT;
        }
        usleep((useconds_t)(backoff_ms * 1000));
        backoff_ms = SCOMM_MIN(backoff_ms * 2, 500);
    }
}

int scomm_sock_write_all(int fd, const void *buf, size_t len,
                         uint64_t deadline)
{
    const char *p = buf;
    ssize_t n;
    int rc;

    while (len > 0) {
        n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if ((n < 0) && (errno != EAGAIN) && (errno != EINTR)) {
            return SCOMM_SOCK_ERROR;
        }
        rc = scomm_sock_wait(fd, POLLOUT, deadline);
        if (rc != SCOMM_SOCK_OK) {
            return rc;
        }
    }
    return SCOMM_SOCK_OK;
}

int scomm_sock_read_all(int fd, void *buf, size_t len, uint64_t deadline)
{
    char *p = buf;
    ssize_t n;
    int rc;

    while (len > 0) {
        n = recv(fd, p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0) {
            return SCOMM_SOCK_EOF;
        }
        if ((errno != EAGAIN) && (errno != EINTR)) {
            return SCOMM_SOCK_ERROR;
        }
        rc = scomm_sock_wait(fd, POLLIN, deadline);
        if (rc != SCOMM_SOCK_OK) {
            return rc;
        }
    }
    return SCOMM_SOCK_OK;
}

int scomm_sock_set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return -1;
}

int scomm_sock_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int port      = -1;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return -1;
    }
    scomm_sock_addr_str(&ss, NULL, 0, &port);
    return port;
}

void scomm_sock_addr_str(const struct sockaddr_storage *ss, char *out,
                         size_t outlen, int *port)
{
    const struct sockaddr_in *in4;
    const struct sockaddr_in6 *in6;
    char tmp[INET6_ADDRSTRLEN] = "?";
    int p                      = -1;

    if (ss->ss_family == AF_INET) {
        in4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in4->sin_addr, tmp, sizeof(tmp));
        p = ntohs(in4->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, tmp, sizeof(tmp));
        p = ntohs(in6->sin6_port);
    }
    if ((out != NULL) && (outlen > 0)) {
        snprintf(out, outlen, "%s", tmp);
    }
    if (port != NULL) {
        *port = p;
    }
}

int scomm_sock_peer_is(int fd, const char *want, int rank, char *why,
                       size_t whylen)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char addr[64];  /* INET6_ADDRSTRLEN, with room */

    if (getpeername(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        return 0;
    }
    scomm_sock_addr_str(&ss, addr, sizeof(addr), NULL);
    if (strcmp(addr, want) != 0) {
        snprintf(why, whylen, "claims rank %d but comes from %s, not %s",
                 rank, addr, want);
        return -1;
    }
    return 0;
}

void scomm_sock_tune(int fd, uint64_t bufsize)
{
    int one = 1;
    int sz;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bufsize > 0) {
        sz = (int)SCOMM_MIN(bufsize, (uint64_t)(1 << 30));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
}

#define SOCK_PENDING_MAX 64

int scomm_sock_accept_hellos(int lfd, size_t hello_len, int expect,
                             uint64_t deadline, scomm_sock_hello_cb_t cb,
                             void *arg)
{
    struct pollfd pfds[SOCK_PENDING_MAX + 1];
    size_t got[SOCK_PENDING_MAX];
    uint8_t *bufs;
    int done = 0, np = 0, i, n, fd, rc;
    ssize_t r;

    bufs = malloc(SOCK_PENDING_MAX * SCOMM_MAX(hello_len, (size_t)1));
    if (bufs == NULL) {
        return 0; /* as if the deadline passed: the caller reports it */
    }
    while ((done < expect) && (scomm_now_ns() < deadline)) {
        pfds[0].fd     = lfd;
        pfds[0].events = POLLIN;
        n = poll(pfds, (nfds_t)np + 1, scomm_ms_left(deadline, 100));
        if (n <= 0) {
            continue;
        }
        if ((pfds[0].revents & POLLIN) && (np < SOCK_PENDING_MAX)) {
            fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd >= 0) {
                pfds[np + 1].fd      = fd;
                pfds[np + 1].events  = POLLIN;
                pfds[np + 1].revents = 0;
                got[np]              = 0;
                np++;
            }
        }
        for (i = 0; i < np; i++) {
            if (!(pfds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            r = recv(pfds[i + 1].fd, bufs + (size_t)i * hello_len + got[i],
                     hello_len - got[i], 0);
            if (r > 0) {
                got[i] += (size_t)r;
            }
            if ((r == 0) || ((r < 0) && (errno != EAGAIN))) {
                rc = 0; /* closed or failed before its hello */
            } else if (got[i] < hello_len) {
                continue;
            } else {
                rc = cb(arg, pfds[i + 1].fd, bufs + (size_t)i * hello_len);
            }
            if (rc < 0) {
                pfds[i + 1].fd = -1; /* the callee's */
                done           = -1;
                break;
            }
            if (rc == 1) {
                done++;
            } else {
                close(pfds[i + 1].fd);
            }
            /* Move the last pending connection into this slot. */
            np--;
            pfds[i + 1] = pfds[np + 1];
            got[i]      = got[np];
            memcpy(bufs + (size_t)i * hello_len,
                   bufs + (size_t)np * hello_len, got[np]);
            i--;
        }
        if (done < 0) {
            break;
        }
    }
    for (i = 0; i < np; i++) {
        if (pfds[i + 1].fd >= 0) {
            close(pfds[i + 1].fd);
        }
    }
    free(bufs);
    return done;
}
