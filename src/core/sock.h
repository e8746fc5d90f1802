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
/* This host's address for peers to reach (port 0): the IP address of
 * interface ifname when it is not empty (knob names the variable that set
 * it, for the message), else the source address of the route to
 * master:port. 0, or -1 with a reason in err. */
int scomm_sock_pick_local(const char *ifname, const char *knob,
                          const char *master, int port,
                          struct sockaddr_storage *ss, socklen_t *len,
                          char *err, size_t errlen);
/* Set the port of an IPv4 or IPv6 address: 0, or -1 for another family. */
int scomm_sock_set_port(struct sockaddr_storage *ss, int port);
int scomm_sock_local_port(int fd);
void scomm_sock_addr_str(const struct sockaddr_storage *ss, char *out,
                         size_t outlen, int *port);
void scomm_sock_tune(int fd, uint64_t bufsize);
/* Check that connection fd comes from want (the address rank published in
 * the bootstrap): 0 if it does (or the peer address cannot be read), -1
 * with why set if it comes from elsewhere. */
int scomm_sock_peer_is(int fd, const char *want, int rank, char *why,
                       size_t whylen);

/* Called with each whole hello read by scomm_sock_accept_hellos: returns 1
 * if it accepted the connection (fd is the callee's now), 0 if it refused
 * it (the helper closes fd), -1 to stop with a failure it has recorded
 * (fd is the callee's, as with 1). */
typedef int (*scomm_sock_hello_cb_t)(void *arg, int fd, const uint8_t *hello);

/* Accept connections on the listening socket lfd, read a hello of hello_len
 * bytes from each (at most 64 pending at once), and hand it to cb, until cb
 * has accepted `expect` connections or the deadline passes. A connection
 * that closes before its whole hello is dropped. Returns how many cb
 * accepted (< expect: the deadline passed), or -1 when cb returned -1;
 * pending connections are closed either way. */
int scomm_sock_accept_hellos(int lfd, size_t hello_len, int expect,
                             uint64_t deadline, scomm_sock_hello_cb_t cb,
                             void *arg);

#endif /* SCOMM_SOCK_H */
