/*
 * sock.h - socket helpers with deadlines, shared by the bootstrap and the
 * TCP transport. Every blocking helper takes an absolute deadline and works
 * on non-blocking fds through poll(), so none can hang.
 */
#ifndef SCOMM_SOCK_H
#define SCOMM_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum {
    SCOMM_SOCK_OK      = 0,
    SCOMM_SOCK_ERROR   = -1, /* errno is set */
    SCOMM_SOCK_TIMEOUT = -2,
    SCOMM_SOCK_EOF     = -3
};

int scomm_sock_resolve(const char *host, int port,
                       struct sockaddr_storage *ss, socklen_t *len,
                       char *err, size_t errlen);
int scomm_sock_listen(const struct sockaddr_storage *ss, socklen_t len,
                      char *err, size_t errlen);
/* Connect, retrying refused/unreachable with backoff until the deadline. */
int scomm_sock_connect(const struct sockaddr_storage *ss, socklen_t len,
                       uint64_t deadline, int retry, int *fd_p);
int scomm_sock_write_all(int fd, const void *buf, size_t len,
                         uint64_t deadline);
int scomm_sock_read_all(int fd, void *buf, size_t len, uint64_t deadline);
int scomm_sock_local_port(int fd);
void scomm_sock_addr_str(const struct sockaddr_storage *ss, char *out,
                         size_t outlen, int *port);
void scomm_sock_tune(int fd, uint64_t bufsize);

#endif /* SCOMM_SOCK_H */
