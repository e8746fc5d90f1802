/*
 * launch_ctl.c - the launchers of a multi-host job talking to each other
 * (launch_ctl.h has the protocol and its invariants).
 *
 * Wire format of every message (LAUNCH_CTL_MSG bytes, integers little
 * endian):
 *
 *     0 magic "SCLC"   4 version   8 type   12 node   16 nnodes
 *    20 nproc  24 code  28 (zero)  32 host[64]  96 token[256] (HELLO)
 *   352 text[160]
 *
 * Design notes:
 *  1. Node 0 keeps one slot per node (its own unused), the others one slot
 *     for node 0. A slot's fd is -1 once its connection is gone.
 *  2. A write that fails or cannot finish within LAUNCH_CTL_WRITE_MS shuts
 *     the connection down instead of closing it, so the next poll reports
 *     it and the loss is handled in one place (ctl_gone).
 */
#include "launch_ctl.h"

#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/sock.h"
#include "core/util.h"

#define LAUNCH_CTL_MSG       512
#define LAUNCH_CTL_MAGIC     0x434c4353u /* "SCLC" */
#define LAUNCH_CTL_VERSION   1
#define LAUNCH_CTL_HOST      64
#define LAUNCH_CTL_TOKEN     256
#define LAUNCH_CTL_TEXT      160
#define LAUNCH_CTL_WRITE_MS  2000
#define LAUNCH_CTL_GRACE_MS  5000 /* a node waits for GO this much longer */

enum {
    CTL_HELLO = 1, /* node -> 0: token, node, nnodes, nproc, host */
    CTL_GO,        /* 0 -> node: start the ranks; host */
    CTL_REFUSE,    /* 0 -> node: text */
    CTL_FAIL,      /* node -> 0: code, text */
    CTL_DONE,      /* node -> 0 */
    CTL_ABORT,     /* 0 -> node: code, text */
    CTL_END        /* 0 -> node: code */
};

typedef struct {
    uint32_t type;
    int32_t  node, nnodes, nproc, code;
    char     host[LAUNCH_CTL_HOST];
    char     token[LAUNCH_CTL_TOKEN];
    char     text[LAUNCH_CTL_TEXT];
} ctl_msg_t;

typedef struct {
    int     fd;
    int     done;   /* said DONE */
    char    host[LAUNCH_CTL_HOST];
    size_t  got;
    uint8_t buf[LAUNCH_CTL_MSG];
} ctl_peer_t;

struct launch_ctl {
    launch_ctl_cfg_t cfg;
    char             token[LAUNCH_CTL_TOKEN];
    char             host[LAUNCH_CTL_HOST];
    char             self[LAUNCH_CTL_HOST + 32];
    ctl_peer_t      *peer;    /* note 1 */
    int              npeer;
    int              failed;  /* invariant 3 */
    int              code;
    int              self_done;
    int              ndone;
    int              ended;
    char             join_err[512];
};

/* ---- messages ---------------------------------------------------------- */

static void ctl_put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, sizeof(v));
}

static uint32_t ctl_get32(const uint8_t *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return le32toh(v);
}

/* Copy a string field out of the wire: cut to the field, control
 * characters replaced, so that it prints as one line. */
static void ctl_get_str(char *dst, const uint8_t *src, size_t len)
{
    size_t i;

    for (i = 0; (i + 1 < len) && (src[i] != '\0'); i++) {
        dst[i] = ((src[i] < 0x20) || (src[i] == 0x7f)) ? '?' : (char)src[i];
    }
    dst[i] = '\0';
}

static void ctl_encode(const ctl_msg_t *m, uint8_t *out)
{
    memset(out, 0, LAUNCH_CTL_MSG);
    ctl_put32(out, LAUNCH_CTL_MAGIC);
    ctl_put32(out + 4, LAUNCH_CTL_VERSION);
    ctl_put32(out + 8, m->type);
    ctl_put32(out + 12, (uint32_t)m->node);
    ctl_put32(out + 16, (uint32_t)m->nnodes);
    ctl_put32(out + 20, (uint32_t)m->nproc);
    ctl_put32(out + 24, (uint32_t)m->code);
    memcpy(out + 32, m->host, strnlen(m->host, LAUNCH_CTL_HOST - 1));
    memcpy(out + 96, m->token, strnlen(m->token, LAUNCH_CTL_TOKEN - 1));
    memcpy(out + 352, m->text, strnlen(m->text, LAUNCH_CTL_TEXT - 1));
}

/* 0, or -1 when in is no launcher message of this version. */
static int ctl_decode(const uint8_t *in, ctl_msg_t *m)
{
    if ((ctl_get32(in) != LAUNCH_CTL_MAGIC) ||
        (ctl_get32(in + 4) != LAUNCH_CTL_VERSION)) {
        return -1;
    }
    m->type   = ctl_get32(in + 8);
    m->node   = (int32_t)ctl_get32(in + 12);
    m->nnodes = (int32_t)ctl_get32(in + 16);
    m->nproc  = (int32_t)ctl_get32(in + 20);
    m->code   = (int32_t)ctl_get32(in + 24);
    ctl_get_str(m->host, in + 32, LAUNCH_CTL_HOST);
    memcpy(m->token, in + 96, LAUNCH_CTL_TOKEN);
    m->token[LAUNCH_CTL_TOKEN - 1] = '\0';
    ctl_get_str(m->text, in + 352, LAUNCH_CTL_TEXT);
    return 0;
}

/* Send one message; on failure shut the connection down (note 2). */
static int ctl_send(int fd, uint32_t type, int code, const char *host,
                    const char *text)
{
    uint8_t   buf[LAUNCH_CTL_MSG];
    ctl_msg_t m;

    if (fd < 0) {
        return -1;
    }
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.code = code;
    snprintf(m.host, sizeof(m.host), "%s", (host != NULL) ? host : "");
    snprintf(m.text, sizeof(m.text), "%s", (text != NULL) ? text : "");
    ctl_encode(&m, buf);
    if (scomm_sock_write_all(fd, buf, sizeof(buf),
                             scomm_deadline_ms(LAUNCH_CTL_WRITE_MS)) !=
        SCOMM_SOCK_OK) {
        (void)shutdown(fd, SHUT_RDWR);
        return -1;
    }
    return 0;
}

/* Send to every node still connected but one (-1: none left out). */
static void ctl_send_all(launch_ctl_t *c, uint32_t type, int code,
                         const char *text, int except)
{
    int k;

    for (k = 1; k < c->npeer; k++) {
        if (k != except) {
            (void)ctl_send(c->peer[k].fd, type, code, c->host, text);
        }
    }
}

/* A silent peer host turns into a closed connection (invariant 2). */
static void ctl_keepalive(int fd)
{
    int one = 1, idle = 5, intvl = 2, cnt = 3;
    unsigned int user_ms = 15000;

    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof(user_ms));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- joining ----------------------------------------------------------- */

static void ctl_peer_addr(int fd, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[64];
    int port = 0;

    if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(out, len, "?");
        return;
    }
    scomm_sock_addr_str(&ss, addr, sizeof(addr), &port);
    snprintf(out, len, "%s port %d", addr, port);
}

/* scomm_sock_accept_hellos callback on node 0 (launch_ctl.h, HELLO). */
static int ctl_admit(void *arg, int fd, const uint8_t *hello)
{
    launch_ctl_t *c = arg;
    ctl_msg_t     m;
    char          from[96];

    ctl_peer_addr(fd, from, sizeof(from));
    if ((ctl_decode(hello, &m) != 0) || (m.type != CTL_HELLO)) {
        fprintf(stderr, "scomm launch: %s: dropped a connection from %s "
                "that is not a scomm launcher of this version\n", c->self,
                from);
        return 0;
    }
    if (!scomm_secret_equal(m.token, c->token)) {
        fprintf(stderr, "scomm launch: %s: refused a launcher at %s (says "
                "node %d): job token mismatch\n", c->self, from,
                (int)m.node);
        (void)ctl_send(fd, CTL_REFUSE, 1, c->host, "job token mismatch: "
                       "this launcher is not part of the job (every "
                       "launcher needs the same SCOMM_JOB_TOKEN)");
        return 0;
    }
    /* The right token: a launcher of this job, so a mismatch is the job's
     * configuration and fails it rather than wait for the timeout. */
    if ((m.nnodes != c->cfg.nnodes) || (m.nproc != c->cfg.nproc)) {
        snprintf(c->join_err, sizeof(c->join_err), "node %d (%s) has "
                 "--nnodes %d --nproc-per-node %d, node 0 has --nnodes %d "
                 "--nproc-per-node %d", (int)m.node, m.host, (int)m.nnodes,
                 (int)m.nproc, c->cfg.nnodes, c->cfg.nproc);
    } else if ((m.node < 1) || (m.node >= c->cfg.nnodes)) {
        snprintf(c->join_err, sizeof(c->join_err), "a launcher on %s (%s) "
                 "has --node-rank %d: expected 1..%d", m.host, from,
                 (int)m.node, c->cfg.nnodes - 1);
    } else if (c->peer[m.node].fd >= 0) {
        snprintf(c->join_err, sizeof(c->join_err), "two launchers have "
                 "--node-rank %d: on %s and on %s (%s)", (int)m.node,
                 c->peer[m.node].host, m.host, from);
    } else {
        c->peer[m.node].fd = fd;
        snprintf(c->peer[m.node].host, sizeof(c->peer[m.node].host), "%s",
                 m.host);
        ctl_keepalive(fd);
        return 1;
    }
    (void)ctl_send(fd, CTL_REFUSE, 1, c->host, c->join_err);
    close(fd);
    return -1;
}

static int ctl_join_root(launch_ctl_t *c, uint64_t deadline)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    char err[256], missing[128];
    size_t off = 0;
    int lfd, got, k;

    if (scomm_sock_resolve(c->cfg.master_addr, c->cfg.port, &ss, &sl, err,
                           sizeof(err)) != 0) {
        fprintf(stderr, "scomm launch: %s: --master-addr: %s\n", c->self,
                err);
        return 1;
    }
    lfd = scomm_sock_listen(&ss, sl, err, sizeof(err));
    if (lfd < 0) {
        fprintf(stderr, "scomm launch: %s: cannot listen for the other "
                "launchers on %s port %d (--master-port + 1): %s; "
                "--master-addr must be an address of the host of "
                "--node-rank 0\n", c->self, c->cfg.master_addr, c->cfg.port,
                err);
        return 1;
    }
    got = scomm_sock_accept_hellos(lfd, LAUNCH_CTL_MSG, c->cfg.nnodes - 1,
                                   deadline, ctl_admit, c);
    close(lfd);
    if (got == c->cfg.nnodes - 1) {
        ctl_send_all(c, CTL_GO, 0, NULL, -1);
        return 0;
    }
    if (got >= 0) {
        for (k = 1; (k < c->npeer) && (off + 16 < sizeof(missing)); k++) {
            if (c->peer[k].fd < 0) {
                off += (size_t)snprintf(missing + off, sizeof(missing) - off,
                                        "%s%d", (off > 0) ? ", " : "", k);
            }
        }
        snprintf(c->join_err, sizeof(c->join_err), "the launchers of "
                 "node(s) %s did not join within %g s (--join-timeout)",
                 missing, c->cfg.join_timeout);
    }
    fprintf(stderr, "scomm launch: %s: %s\n", c->self, c->join_err);
    ctl_send_all(c, CTL_ABORT, 1, c->join_err, -1);
    return 1;
}

static int ctl_join_node(launch_ctl_t *c, uint64_t deadline)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    uint8_t buf[LAUNCH_CTL_MSG];
    ctl_msg_t m;
    char err[256];
    int fd = -1, rc;

    if (scomm_sock_resolve(c->cfg.master_addr, c->cfg.port, &ss, &sl, err,
                           sizeof(err)) != 0) {
        fprintf(stderr, "scomm launch: %s: --master-addr: %s\n", c->self,
                err);
        return 1;
    }
    rc = scomm_sock_connect(&ss, sl, deadline, 1, &fd);
    if (rc != SCOMM_SOCK_OK) {
        fprintf(stderr, "scomm launch: %s: cannot reach the launcher of node "
                "0 at %s port %d (--master-port + 1) within %g s: %s\n",
                c->self, c->cfg.master_addr, c->cfg.port,
                c->cfg.join_timeout,
                (rc == SCOMM_SOCK_TIMEOUT) ? "timed out" : strerror(errno));
        return 1;
    }
    memset(&m, 0, sizeof(m));
    m.type   = CTL_HELLO;
    m.node   = c->cfg.node_rank;
    m.nnodes = c->cfg.nnodes;
    m.nproc  = c->cfg.nproc;
    snprintf(m.host, sizeof(m.host), "%s", c->host);
    snprintf(m.token, sizeof(m.token), "%s", c->token);
    ctl_encode(&m, buf);
    rc = scomm_sock_write_all(fd, buf, sizeof(buf),
                              scomm_deadline_ms(LAUNCH_CTL_WRITE_MS));
    if (rc == SCOMM_SOCK_OK) {
        /* Node 0 answers once every node joined or its own deadline
         * passed; it may have started up to join_timeout after us. */
        rc = scomm_sock_read_all(fd, buf, sizeof(buf),
                                 scomm_deadline_ms(
                                     (int64_t)(c->cfg.join_timeout * 1000) +
                                     LAUNCH_CTL_GRACE_MS));
    }
    if (rc != SCOMM_SOCK_OK) {
        fprintf(stderr, "scomm launch: %s: no answer from the launcher of "
                "node 0 at %s port %d: %s\n", c->self, c->cfg.master_addr,
                c->cfg.port, (rc == SCOMM_SOCK_TIMEOUT) ? "timed out"
                             : (rc == SCOMM_SOCK_EOF) ? "connection closed"
                                                      : strerror(errno));
        close(fd);
        return 1;
    }
    if ((ctl_decode(buf, &m) != 0) || (m.type != CTL_GO)) {
        fprintf(stderr, "scomm launch: %s: the launcher of node 0 (%s) "
                "refused this one: %s\n", c->self,
                (m.host[0] != '\0') ? m.host : "?",
                (m.text[0] != '\0') ? m.text : "malformed answer");
        close(fd);
        return 1;
    }
    c->peer[0].fd = fd;
    snprintf(c->peer[0].host, sizeof(c->peer[0].host), "%s", m.host);
    ctl_keepalive(fd);
    return 0;
}

int launch_ctl_join(const launch_ctl_cfg_t *cfg, launch_ctl_t **ctl_p)
{
    launch_ctl_t *c;
    uint64_t      deadline;
    int           k, rc;

    *ctl_p = NULL;
    c      = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->npeer = (cfg->node_rank == 0) ? cfg->nnodes : 1;
        c->peer  = calloc((size_t)c->npeer, sizeof(*c->peer));
    }
    if ((c == NULL) || (c->peer == NULL)) {
        fprintf(stderr, "scomm launch: out of memory\n");
        free(c);
        return 1;
    }
    c->cfg = *cfg;
    snprintf(c->token, sizeof(c->token), "%s", cfg->token);
    if (gethostname(c->host, sizeof(c->host)) != 0) {
        snprintf(c->host, sizeof(c->host), "?");
    }
    c->host[sizeof(c->host) - 1] = '\0';
    snprintf(c->self, sizeof(c->self), "node %d (%s)", cfg->node_rank,
             c->host);
    for (k = 0; k < c->npeer; k++) {
        c->peer[k].fd = -1;
    }
    deadline = scomm_deadline_ms((int64_t)(cfg->join_timeout * 1000));
    rc = (cfg->node_rank == 0) ? ctl_join_root(c, deadline)
                               : ctl_join_node(c, deadline);
    if (rc != 0) {
        launch_ctl_free(c);
        return 1;
    }
    *ctl_p = c;
    return 0;
}

/* ---- after the join ---------------------------------------------------- */

int launch_ctl_fds(const launch_ctl_t *c, struct pollfd *pfds, int max)
{
    int k, n = 0;

    for (k = 0; (k < c->npeer) && (n < max); k++) {
        if (c->peer[k].fd >= 0) {
            pfds[n].fd      = c->peer[k].fd;
            pfds[n].events  = POLLIN;
            pfds[n].revents = 0;
            n++;
        }
    }
    return n;
}

static int ctl_is_root(const launch_ctl_t *c)
{
    return c->cfg.node_rank == 0;
}

static void ctl_maybe_end(launch_ctl_t *c)
{
    if (ctl_is_root(c) && !c->failed && c->self_done &&
        (c->ndone == c->cfg.nnodes - 1)) {
        ctl_send_all(c, CTL_END, 0, NULL, -1);
        c->ended = 1;
    }
}

/* A failure reported by node k, or found here about it: the first fails
 * the job (and node 0 tells the others), later ones are printed. */
static int ctl_failure(launch_ctl_t *c, int k, int code, const char *text,
                       launch_ctl_event_t *ev)
{
    if (ctl_is_root(c)) {
        snprintf(ev->msg, sizeof(ev->msg), "node %d (%s): %s", k,
                 c->peer[k].host, text);
    } else {
        snprintf(ev->msg, sizeof(ev->msg), "%s", text); /* node 0's words */
    }
    ev->code = code;
    if (c->failed) {
        ev->what = LAUNCH_CTL_ALSO;
        return 1;
    }
    c->failed = 1;
    c->code   = code;
    ev->what  = LAUNCH_CTL_FAILED;
    if (ctl_is_root(c)) {
        ctl_send_all(c, CTL_ABORT, code, ev->msg, k);
    }
    return 1;
}

/* Peer k's connection is gone (closed, reset, silent, or it broke the
 * protocol). */
static int ctl_gone(launch_ctl_t *c, int k, const char *why,
                    launch_ctl_event_t *ev)
{
    char text[LAUNCH_CTL_TEXT + 64];
    int  mattered;

    close(c->peer[k].fd);
    c->peer[k].fd = -1;
    /* Expected: a node that said DONE or was told the job ended, or any
     * connection once the job failed. */
    mattered = !c->failed && !c->ended && !(ctl_is_root(c) &&
                                            c->peer[k].done);
    if (!mattered) {
        return 0;
    }
    if (ctl_is_root(c)) {
        snprintf(text, sizeof(text), "its launcher is gone (%s)", why);
    } else {
        snprintf(text, sizeof(text), "node 0 (%s): its launcher is gone (%s)",
                 c->peer[0].host, why);
    }
    c->ended = 1;
    return ctl_failure(c, k, 1, text, ev);
}

static int ctl_message(launch_ctl_t *c, int k, const ctl_msg_t *m,
                       launch_ctl_event_t *ev)
{
    char why[64];

    if (ctl_is_root(c) && (m->type == CTL_FAIL)) {
        return ctl_failure(c, k, m->code, m->text, ev);
    }
    if (ctl_is_root(c) && (m->type == CTL_DONE) && !c->peer[k].done) {
        c->peer[k].done = 1;
        c->ndone++;
        ctl_maybe_end(c);
        return 0;
    }
    if (!ctl_is_root(c) && (m->type == CTL_ABORT)) {
        c->ended = 1;
        return ctl_failure(c, k, m->code, m->text, ev);
    }
    if (!ctl_is_root(c) && (m->type == CTL_END)) {
        c->ended = 1;
        ev->what = LAUNCH_CTL_ENDED;
        ev->code = m->code;
        ev->msg[0] = '\0';
        return 1;
    }
    snprintf(why, sizeof(why), "unexpected message type %u",
             (unsigned)m->type);
    return ctl_gone(c, k, why, ev);
}

int launch_ctl_input(launch_ctl_t *c, struct pollfd *pfds, int n,
                     launch_ctl_event_t *ev)
{
    int i, k;

    memset(ev, 0, sizeof(*ev));
    for (i = 0; i < n; i++) {
        ctl_peer_t *p = NULL;
        ssize_t     r;

        if (pfds[i].revents == 0) {
            continue;
        }
        for (k = 0; k < c->npeer; k++) {
            if ((c->peer[k].fd >= 0) && (c->peer[k].fd == pfds[i].fd)) {
                p = &c->peer[k];
                break;
            }
        }
        if (p == NULL) {
            pfds[i].revents = 0;
            continue;
        }
        r = recv(p->fd, p->buf + p->got, sizeof(p->buf) - p->got, 0);
        if ((r < 0) && ((errno == EAGAIN) || (errno == EWOULDBLOCK) ||
                        (errno == EINTR))) {
            pfds[i].revents = 0;
            continue;
        }
        if (r <= 0) {
            pfds[i].revents = 0;
            if (ctl_gone(c, k, (r == 0) ? "connection closed"
                                        : strerror(errno), ev)) {
                return 1;
            }
            continue;
        }
        /* Leave revents set: more may be waiting; the next call reads on
         * until EAGAIN. */
        p->got += (size_t)r;
        if (p->got == sizeof(p->buf)) {
            ctl_msg_t m;

            p->got = 0;
            if (ctl_decode(p->buf, &m) != 0) {
                if (ctl_gone(c, k, "not a launcher message", ev)) {
                    return 1;
                }
                continue;
            }
            if (ctl_message(c, k, &m, ev)) {
                return 1;
            }
        }
        i--; /* read this fd again */
    }
    return 0;
}

void launch_ctl_failed(launch_ctl_t *c, int code, const char *what)
{
    char text[LAUNCH_CTL_TEXT + 96];

    if (c->failed) {
        return;
    }
    c->failed = 1;
    c->code   = code;
    if (ctl_is_root(c)) {
        snprintf(text, sizeof(text), "%s: %s", c->self, what);
        ctl_send_all(c, CTL_ABORT, code, text, -1);
    } else {
        (void)ctl_send(c->peer[0].fd, CTL_FAIL, code, c->host, what);
    }
}

void launch_ctl_done(launch_ctl_t *c)
{
    if (c->self_done) {
        return;
    }
    c->self_done = 1;
    if (ctl_is_root(c)) {
        ctl_maybe_end(c);
    } else {
        (void)ctl_send(c->peer[0].fd, CTL_DONE, 0, c->host, NULL);
    }
}

int launch_ctl_over(const launch_ctl_t *c)
{
    return c->failed || c->ended;
}

const char *launch_ctl_self(const launch_ctl_t *c)
{
    return c->self;
}

void launch_ctl_free(launch_ctl_t *c)
{
    int k;

    if (c == NULL) {
        return;
    }
    for (k = 0; k < c->npeer; k++) {
        if (c->peer[k].fd >= 0) {
            close(c->peer[k].fd);
        }
    }
    free(c->peer);
    free(c);
}
