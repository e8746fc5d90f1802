/*
 * kv_ep.c - KV-cache transfer endpoints: connection set-up (listen/accept/
 * connect with a token, or through a communicator), region registration,
 * the sender's chunk scheduler and the receiver's store path, with CRC32C,
 * re-sends, priorities, same-host zero copy and per-layer notification.
 *
 * Threads: each stream (one TCP socket) has a TX thread, the only writer of
 * its socket, and an RX thread, the only reader. One mutex per endpoint
 * guards the shared state; the two conditions wake TX threads (work) and
 * waiters (completion).
 *
 * Design notes (invariants):
 *  1. An RX thread never writes a socket: replies (ACK, NACK, BEGIN_OK...)
 *     are queued for the stream's TX thread. So two endpoints sending to
 *     each other cannot deadlock on full socket buffers.
 *  2. Every socket wait is a poll of at most 200 ms; a stream that moves no
 *     byte in either direction for KV_STALL_MS (heartbeats are sent after
 *     KV_HB_MS idle) is dropped. A dropped stream's unanswered chunks go
 *     back to their transfers' re-send queues and move on another stream;
 *     when the last stream is gone the endpoint fails with
 *     SCOMM_ERR_PEER_LOST and every waiter returns it.
 *  3. The sender keeps no copy of a chunk: a re-send packs it again from
 *     the registered source region. Staging memory is per stream: two
 *     buffers of one chunk on each side, only when the chunk is converted
 *     or compressed (or its blocks need regrouping on the receiver).
 *  4. A transfer is referenced by each in-flight chunk and by its user
 *     handle; it is freed when both are gone.
 *  5. Sender transfer states:
 *
 *       submit -> BEGIN_WAIT --tx_loop--> BEGIN_SENT --on BEGIN_OK--> RUN
 *       RUN --on last ACK--> DONE;   any --fault/BEGIN_ERR/cancel--> FAILED
 *
 *     The receiver's transfer exists from its BEGIN to scomm_kv_wait_xfer;
 *     each layer's counter reaches zero when all its chunks are stored.
 */
#include "kv.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zstd.h>

#include "core/scomm_int.h"
#include "core/sock.h"
#include "telemetry/tm.h"
#include "topo/preset.h"

#define KV_HB_MS        500
#define KV_STALL_MS     3000
#define KV_POLL_MS      200
#define KV_MAX_NACKS    16
#define KV_IOV_BATCH    512
#define KV_REDIAL_SLACK 500   /* the accepting side waits this much longer */
#define KV_REDIAL_TRY_MS 1000 /* one re-dial attempt: connect + handshake */
#define KV_BACKOFF_MAX_MS 400

enum { SX_BEGIN_WAIT = 0, SX_BEGIN_SENT, SX_RUN, SX_DONE, SX_FAILED };

typedef struct kv_region {
    int               used;
    scomm_kv_layout_t l;
    uint8_t          *base;
    uint64_t          bytes;
    size_t            bb;    /* block bytes */
} kv_region_t;

typedef struct scomm_kv_xfer kv_sx_t;

struct scomm_kv_xfer {
    kv_sx_t        *next;
    scomm_kv_ep_t  *ep;
    scomm_kv_plan_t plan;
    int32_t        *tbl;          /* src then dst table (owned) */
    int             priority;
    uint64_t        order;
    int             state;
    int             cma;          /* receiver copies from our region */
    int             begin_stream; /* stream that carried the BEGIN */
    int             wire_dtype, compression, level;
    uint32_t        bpc, cpl;
    uint64_t        nchunks, next_seq, acked;
    uint8_t        *acked_map;
    uint8_t        *nacks;
    uint32_t       *resend;
    uint64_t        nresend;
    uint64_t        t_submit;     /* scomm_now_ns() at submit (telemetry) */
    int             refs;         /* in-flight chunks + BEGIN in progress */
    int             user_freed;
    int             orphan;       /* endpoint closed */
    scomm_status_t  status;
    char            msg[SCOMM_KV_ERRTEXT_MAX];
};

typedef struct kv_rx {
    struct kv_rx     *next;
    uint64_t          id;
    scomm_kv_begin_t  b;
    scomm_kv_layout_t sl;         /* source layout, from BEGIN */
    int               region;
    int               direct;     /* bytes land in place, no regrouping */
    int               cma;
    uint32_t         *layer_left;
    uint8_t          *got;        /* per chunk: KV_CHUNK_* */
    uint64_t          ndone;
    int               refs;
    scomm_status_t    status;
    char              msg[SCOMM_KV_ERRTEXT_MAX];
} kv_rx_t;

/* A chunk's state on the receiver. A chunk re-sent after a stream broke
 * can arrive on a second stream while the first copy is still being
 * stored: only one stream stores it at a time, or a good copy's CRC could
 * pass before a damaged copy lands over the same blocks. */
enum {
    KV_CHUNK_MISSING = 0,
    KV_CHUNK_STORED  = 1,
    KV_CHUNK_STORING = 2
};

typedef struct kv_ctl {
    scomm_kv_hdr_t h;
    char           text[SCOMM_KV_ERRTEXT_MAX];
} kv_ctl_t;

typedef struct kv_inf {
    kv_sx_t *sx;
    uint32_t seq;
} kv_inf_t;

typedef struct kv_stream {
    scomm_kv_ep_t *ep;
    int            idx;
    int            fd;
    int            alive;
    pthread_t      tx, rx;
    int            tx_started, rx_started;
    kv_ctl_t      *ctl;
    size_t         ctl_head, ctl_n, ctl_cap;
    kv_inf_t      *inf;
    int            inf_head, inf_n;
    uint64_t       last_tx, last_rx;
    uint8_t       *tbuf[2];
    size_t         tcap[2];
    uint8_t       *rbuf[2];
    size_t         rcap[2];
    float         *ftmp;   /* RX thread's */
    size_t         fcap;
    float         *ftx;    /* TX thread's */
    size_t         ftxcap;
    ZSTD_CCtx     *zc;
    ZSTD_DCtx     *zd;
    char           why[160];     /* RX thread's last error */
    char           why_tx[160];  /* TX thread's last error */
    char           lost_why[160]; /* why it was lost (lock held) */
    /* Reconnection (lock held; see "Stream lifecycle" below). */
    int            running;      /* TX/RX threads not yet ended */
    int            pending;      /* lost, re-dial awaited */
    int            gone;         /* lost for good */
    uint32_t       epoch;        /* connection number of this stream */
    uint64_t       down_since;   /* when it was lost (ns) */
    uint64_t       next_try;     /* dialler: next attempt (ns) */
    uint32_t       backoff_ms;
} kv_stream_t;

struct scomm_kv_ep {
    pthread_mutex_t lock;
    pthread_cond_t  tx_cond;
    pthread_cond_t  done_cond;
    int             nstreams;
    int             alive;
    kv_stream_t     st[SCOMM_KV_MAX_STREAMS];
    /* resolved options */
    size_t          chunk_size;
    int             depth, zero_copy, compression, level, wire_dtype;
    int64_t         timeout_ms;
    kv_region_t     regions[SCOMM_KV_MAX_REGIONS];
    int             nregions;
    kv_sx_t        *sx_head;
    uint64_t        sx_order;
    kv_rx_t        *rx_head;
    int             closing;
    int             peer_bye;
    scomm_status_t  fault;
    char            fault_msg[SCOMM_KV_ERRTEXT_MAX];
    int             peer_pid;
    int             cma_read_ok;   /* we can read the peer's memory */
    int             no_cma;
    _Atomic int     corrupt_n;
    uint64_t        probe_val;
    scomm_kv_stats_t stats;
    /* Reconnection: the keeper thread re-dials lost streams (dialler) or
     * takes re-dials on lfd (accepting side). */
    pthread_t       keeper;
    int             keeper_started;
    int             reconnect_on;  /* lost streams are waited for */
    pthread_cond_t  keep_cond;
    int             dialer;        /* 1: we dialled, we re-dial */
    int64_t         redial_ms;     /* the dialler's window, 0: none */
    int             lfd;           /* accepting side: re-dial socket */
    int             rport;         /* port re-dials go to */
    struct sockaddr_storage peer_ss; /* dialler: the peer's address */
    socklen_t       peer_sslen;
    char            token[SCOMM_KV_TOKEN_MAX];
    uint64_t        session;
    int             pidfd;         /* peer process, when same host */
    int             hold;          /* test hook: no reconnection */
};

struct scomm_kv_listener {
    int       fd;
    int       port;
    scomm_kv_opts_t opts;
    char      token[SCOMM_KV_TOKEN_MAX];
    int64_t   timeout_ms;
    scomm_kv_ep_t *res;        /* resolved options template */
};

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct kv_cfg {
    size_t  chunk_size;
    int     streams, depth, zero_copy, compression, level, wire_dtype;
    int64_t timeout_ms;
    int64_t reconnect_ms;
    char    token[SCOMM_KV_TOKEN_MAX];
} kv_cfg_t;

scomm_status_t scomm_kv_fail(scomm_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

scomm_status_t scomm_kv_fail(scomm_status_t status, const char *fmt, ...)
{
    char msg[SCOMM_ERRMSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    scomm_set_thread_error("%s", msg);
    scomm_debug(SCOMM_SUB_KV, "-> %s: %s", scomm_status_name(status), msg);
    return status;
}

scomm_status_t scomm_kv_cfg_resolve(const scomm_kv_opts_t *o, kv_cfg_t *c)
{
    scomm_pval_t to, rd, tok;
    scomm_preset_t p;
    char err[SCOMM_ERRMSG_MAX];
    uint64_t m = (o != NULL) ? o->field_mask : 0;
    int rc;

    /* KV endpoints need no communicator: read SCOMM_LOG_* here too. */
    scomm_log_init();
    scomm_config_check_env();
    memset(c, 0, sizeof(*c));
    if ((scomm_param_get("SCOMM_TIMEOUT_MS", NULL, &to, err,
                         sizeof(err)) != SCOMM_OK) ||
        (scomm_param_get("SCOMM_KV_RECONNECT_MS", NULL, &rd, err,
                         sizeof(err)) != SCOMM_OK) ||
        (scomm_param_get("SCOMM_KV_TOKEN", NULL, &tok, err,
                         sizeof(err)) != SCOMM_OK)) {
        return scomm_kv_fail(SCOMM_ERR_BAD_CONFIG, "kv: %s", err);
    }
    c->chunk_size  = 1u << 20;
    c->streams     = 2;
    c->depth       = 4;
    c->zero_copy   = 1;
    /* KV's own default deadline, unless SCOMM_TIMEOUT_MS is set */
    c->timeout_ms  = (to.src != SCOMM_PARAM_SRC_DEFAULT) ? to.i : 30000;
    c->reconnect_ms = rd.i;
    snprintf(c->token, sizeof(c->token), "%s", tok.text);
    if ((m & SCOMM_KV_FIELD_PRESET) && (o->preset != NULL)) {
        rc = scomm_preset_get(o->preset, o->preset_file, &p);
        if (rc != SCOMM_OK) {
            return (scomm_status_t)rc;
        }
        c->chunk_size  = p.chunk_size;
        c->streams     = p.overlap_streams;
        c->depth       = p.prefetch_depth;
        c->zero_copy   = p.zero_copy;
        c->compression = (int)p.compression;
        c->level       = p.compression_level;
        c->wire_dtype  = (p.target_dtype == SCOMM_PRESET_DTYPE_FP8_E4M3)
                             ? SCOMM_KV_WIRE_FP8_E4M3
                             : ((p.target_dtype == SCOMM_PRESET_DTYPE_INT4)
                                    ? SCOMM_KV_WIRE_INT4
                                    : SCOMM_KV_WIRE_NATIVE);
        if (p.target_dtype == SCOMM_PRESET_DTYPE_FP8_E5M2) {
            scomm_warn(SCOMM_SUB_KV, "preset %s: fp8 e5m2 KV is not "
                       "supported, sending native values", o->preset);
        }
    }
    if (m & SCOMM_KV_FIELD_CHUNK_SIZE) {
        c->chunk_size = o->chunk_size;
    }
    if (m & SCOMM_KV_FIELD_STREAMS) {
        c->streams = o->streams;
    }
    if (m & SCOMM_KV_FIELD_PREFETCH_DEPTH) {
        c->depth = o->prefetch_depth;
    }
    if (m & SCOMM_KV_FIELD_ZERO_COPY) {
        c->zero_copy = (o->zero_copy != 0);
    }
    if (m & SCOMM_KV_FIELD_COMPRESSION) {
        c->compression = o->compression;
    }
    if (m & SCOMM_KV_FIELD_COMPRESS_LEVEL) {
        c->level = o->compression_level;
    }
    if (m & SCOMM_KV_FIELD_WIRE_DTYPE) {
        c->wire_dtype = o->wire_dtype;
    }
    if (m & SCOMM_KV_FIELD_TIMEOUT) {
        c->timeout_ms = o->timeout_ms;
    }
    if (m & SCOMM_KV_FIELD_RECONNECT_MS) {
        c->reconnect_ms = o->reconnect_ms;
    }
    if ((m & SCOMM_KV_FIELD_TOKEN) && (o->token != NULL)) {
        if (strlen(o->token) >= SCOMM_KV_TOKEN_MAX) {
            return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv: token longer than "
                                 "%d bytes", SCOMM_KV_TOKEN_MAX - 1);
        }
        snprintf(c->token, sizeof(c->token), "%s", o->token);
    }
    if ((c->chunk_size < 4096) || (c->chunk_size > SCOMM_KV_CHUNK_MAX) ||
        (c->streams < 1) || (c->streams > SCOMM_KV_MAX_STREAMS) ||
        (c->depth < 1) || (c->depth > 1024) || (c->timeout_ms <= 0) ||
        (c->compression < 0) || (c->compression > 2) ||
        (c->wire_dtype < 0) || (c->wire_dtype > 2) ||
        (c->reconnect_ms < 0) ||
        (c->reconnect_ms > (int64_t)SCOMM_KV_REDIAL_MAX_MS)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv: options out of range: "
                             "chunk_size %zu (4 KiB..256 MiB), streams %d "
                             "(1..%d), prefetch_depth %d (1..1024), timeout "
                             "%lld ms, compression %d, wire dtype %d, "
                             "reconnect %lld ms (0..%u)", c->chunk_size,
                             c->streams, SCOMM_KV_MAX_STREAMS, c->depth,
                             (long long)c->timeout_ms, c->compression,
                             c->wire_dtype, (long long)c->reconnect_ms,
                             SCOMM_KV_REDIAL_MAX_MS);
    }
    return SCOMM_OK;
}

/* ------------------------------------------------------------------------ */
/* Socket I/O with stall detection                                           */
/* ------------------------------------------------------------------------ */

/* 0 when the whole iovec moved; -1 on error, EOF, stall or close. */
int scomm_kv_iov_io(kv_stream_t *st, struct iovec *iov, int n, int wr)
{
    uint64_t *last = wr ? &st->last_tx : &st->last_rx;
    /* Each direction has its own thread: its own message buffer. */
    char *why = wr ? st->why_tx : st->why;
    struct pollfd pfd;
    ssize_t r;
    int cnt;

    while (n > 0) {
        if (iov->iov_len == 0) {
            iov++;
            n--;
            continue;
        }
        cnt = (n > KV_IOV_BATCH) ? KV_IOV_BATCH : n;
        r = wr ? writev(st->fd, iov, cnt) : readv(st->fd, iov, cnt);
        if (r > 0) {
            *last = scomm_now_ns();
            while ((r > 0) && (n > 0)) {
                if ((size_t)r >= iov->iov_len) {
                    r -= (ssize_t)iov->iov_len;
                    iov->iov_len = 0;
                    iov++;
                    n--;
                } else {
                    iov->iov_base = (uint8_t *)iov->iov_base + r;
                    iov->iov_len -= (size_t)r;
                    r = 0;
                }
            }
            continue;
        }
        if (r == 0) {
            snprintf(why, sizeof(st->why), "connection closed by peer");
            return -1;
        }
        if ((errno != EAGAIN) && (errno != EWOULDBLOCK) && (errno != EINTR)) {
            snprintf(why, sizeof(st->why), "%s: %s",
                     wr ? "write" : "read", strerror(errno));
            return -1;
        }
        /* Closing does not cut a frame short (the last ACKs still go
         * out); scomm_kv_ep_close shuts the socket down after its TX
         * thread ended, which ends a read, and a stall ends a write. */
        if (!__atomic_load_n(&st->alive, __ATOMIC_ACQUIRE)) {
            snprintf(why, sizeof(st->why), "stream dropped");
            return -1;
        }
        if (scomm_now_ns() - *last > (uint64_t)KV_STALL_MS * 1000000ull) {
            snprintf(why, sizeof(st->why), "no progress for %d ms",
                     KV_STALL_MS);
            return -1;
        }
        pfd.fd      = st->fd;
        pfd.events  = wr ? POLLOUT : POLLIN;
        pfd.revents = 0;
        poll(&pfd, 1, KV_POLL_MS);
    }
    return 0;
}

int scomm_kv_io(kv_stream_t *st, void *buf, size_t len, int wr)
{
    struct iovec iov = { buf, len };

    return scomm_kv_iov_io(st, &iov, 1, wr);
}

int scomm_kv_send_hdr(kv_stream_t *st, scomm_kv_hdr_t *h, const void *pl,
                      size_t plen)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE];
    struct iovec iov[2];

    h->magic   = SCOMM_KV_MAGIC;
    h->version = SCOMM_KV_VERSION;
    h->len     = plen;
    scomm_kv_hdr_encode(h, hb);
    iov[0].iov_base = hb;
    iov[0].iov_len  = sizeof(hb);
    iov[1].iov_base = (void *)pl;
    iov[1].iov_len  = plen;
    return scomm_kv_iov_io(st, iov, (plen > 0) ? 2 : 1, 1);
}

/* Blocking-with-deadline helpers for the handshake (no threads yet). */
int scomm_kv_hs_io(int fd, void *buf, size_t len, int wr, uint64_t deadline)
{
    return wr ? scomm_sock_write_all(fd, buf, len, deadline)
              : scomm_sock_read_all(fd, buf, len, deadline);
}

/* ------------------------------------------------------------------------ */
/* Endpoint state helpers (lock held)                                        */
/* ------------------------------------------------------------------------ */

int scomm_kv_ctl_push(kv_stream_t *st, const scomm_kv_hdr_t *h,
                      const char *text)
{
    kv_ctl_t *nc;
    size_t i, cap = st->ctl_cap;

    if (st->ctl_n == st->ctl_cap) {
        nc = malloc(((cap == 0) ? 16 : 2 * cap) * sizeof(*nc));
        if (nc == NULL) {
            return -1;
        }
        for (i = 0; i < st->ctl_n; i++) {
            nc[i] = st->ctl[(st->ctl_head + i) % cap];
        }
        free(st->ctl);
        st->ctl      = nc;
        st->ctl_head = 0;
        st->ctl_cap  = (cap == 0) ? 16 : 2 * cap;
    }
    i = (st->ctl_head + st->ctl_n) % st->ctl_cap;
    st->ctl[i].h = *h;
    st->ctl[i].text[0] = '\0';
    if (text != NULL) {
        snprintf(st->ctl[i].text, sizeof(st->ctl[i].text), "%s", text);
    }
    st->ctl_n++;
    pthread_cond_broadcast(&st->ep->tx_cond);
    return 0;
}

void scomm_kv_sx_fail(kv_sx_t *sx, scomm_status_t status, const char *msg)
{
    if ((sx->state == SX_DONE) || (sx->state == SX_FAILED)) {
        return;
    }
    sx->state  = SX_FAILED;
    sx->status = status;
    snprintf(sx->msg, sizeof(sx->msg), "%s", msg);
    scomm_tm_add(NULL, SCOMM_TM_KV_ERRORS, 1);
}

void scomm_kv_sx_free(kv_sx_t *sx)
{
    free(sx->tbl);
    free(sx->acked_map);
    free(sx->nacks);
    free(sx->resend);
    free(sx);
}

/* Drop one reference; frees the transfer when nothing holds it. */
void scomm_kv_sx_unref(scomm_kv_ep_t *ep, kv_sx_t *sx)
{
    kv_sx_t **pp;

    sx->refs--;
    if ((sx->refs > 0) || !sx->user_freed) {
        return;
    }
    for (pp = &ep->sx_head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == sx) {
            *pp = sx->next;
            break;
        }
    }
    scomm_kv_sx_free(sx);
}

void scomm_kv_ep_fault(scomm_kv_ep_t *ep, scomm_status_t status,
                       const char *msg)
{
    kv_sx_t *sx;

    if (ep->fault == SCOMM_OK) {
        ep->fault = status;
        snprintf(ep->fault_msg, sizeof(ep->fault_msg), "%s", msg);
        if (!ep->closing) {
            /* The peer's close (BYE) with none of our transfers in flight
             * is its normal teardown. */
            if (ep->peer_bye && (ep->sx_head == NULL)) {
                scomm_info(SCOMM_SUB_KV, "kv endpoint ended: %s", msg);
            } else {
                scomm_warn(SCOMM_SUB_KV, "kv endpoint failed: %s", msg);
            }
        }
    }
    for (sx = ep->sx_head; sx != NULL; sx = sx->next) {
        scomm_kv_sx_fail(sx, status, msg);
    }
    pthread_cond_broadcast(&ep->done_cond);
    pthread_cond_broadcast(&ep->tx_cond);
    pthread_cond_broadcast(&ep->keep_cond);
}

/* 1 if a stream lost now may come back (lock held). */
static int kv_may_reconnect(const scomm_kv_ep_t *ep)
{
    return ep->reconnect_on && !ep->closing &&
           !ep->peer_bye && (ep->fault == SCOMM_OK);
}

static int kv_any_pending(const scomm_kv_ep_t *ep)
{
    int i;

    for (i = 0; i < ep->nstreams; i++) {
        if (ep->st[i].pending) {
            return 1;
        }
    }
    return 0;
}

/* No stream alive and none coming back: the endpoint fails (lock held). */
static void kv_lost_check(scomm_kv_ep_t *ep, const kv_stream_t *st,
                          const char *how)
{
    char msg[SCOMM_KV_ERRTEXT_MAX];

    if ((ep->alive > 0) || kv_any_pending(ep) || ep->closing) {
        return;
    }
    snprintf(msg, sizeof(msg), "kv: peer lost%s (pid %d): stream %d: %s%s%s",
             ep->peer_bye ? " (it closed the endpoint)" : "", ep->peer_pid,
             st->idx, st->lost_why, (how != NULL) ? "; " : "",
             (how != NULL) ? how : "");
    scomm_kv_ep_fault(ep, SCOMM_ERR_PEER_LOST, msg);
}

/* A stream broke: requeue its unanswered chunks; the last one fails the
 * endpoint. */
void scomm_kv_stream_dead(kv_stream_t *st, const char *why)
{
    scomm_kv_ep_t *ep = st->ep;
    kv_inf_t *e;
    kv_sx_t *sx;

    pthread_mutex_lock(&ep->lock);
    if (!st->alive) {
        pthread_mutex_unlock(&ep->lock);
        return;
    }
    __atomic_store_n(&st->alive, 0, __ATOMIC_RELEASE);
    shutdown(st->fd, SHUT_RDWR);
    ep->alive--;
    ep->stats.streams = ep->alive;
    while (st->inf_n > 0) {
        e = &st->inf[st->inf_head];
        st->inf_head = (st->inf_head + 1) % ep->depth;
        st->inf_n--;
        if ((e->sx->state == SX_RUN) && !e->sx->acked_map[e->seq]) {
            e->sx->resend[e->sx->nresend++] = e->seq;
            ep->stats.chunks_resent++;
            scomm_tm_add(NULL, SCOMM_TM_KV_RESENT, 1);
        }
        scomm_kv_sx_unref(ep, e->sx);
    }
    if (!ep->closing) {
        if (!ep->peer_bye) {
            /* After the peer's BYE a stream closing is its clean close. */
            ep->stats.streams_lost++;
        }
        snprintf(st->lost_why, sizeof(st->lost_why), "%s", why);
        st->down_since = scomm_now_ns();
        if (kv_may_reconnect(ep)) {
            /* The keeper thread re-dials it (or takes the peer's re-dial)
             * within the window; until then its chunks move on the others,
             * or wait if it was the last. */
            st->pending    = 1;
            st->next_try   = st->down_since;
            st->backoff_ms = 0;
            scomm_warn(SCOMM_SUB_KV, "kv stream %d dropped (%s); %d left, "
                       "%s for up to %lld ms", st->idx, why, ep->alive,
                       ep->dialer ? "re-dialling it" : "awaiting its re-dial",
                       (long long)ep->redial_ms);
        } else {
            st->gone = 1;
            if (ep->peer_bye) {
                scomm_info(SCOMM_SUB_KV, "kv stream %d closed after the "
                           "peer's BYE (%s); %d left", st->idx, why,
                           ep->alive);
            } else if (ep->alive > 0) {
                scomm_warn(SCOMM_SUB_KV, "kv stream %d dropped (%s); %d "
                           "left, its chunks move on the others", st->idx,
                           why, ep->alive);
            }
        }
        kv_lost_check(ep, st, NULL);
        /* A transfer whose BEGIN went out on this stream may never see its
         * reply: send the BEGIN again on another stream (the receiver
         * answers a repeated BEGIN of a transfer it has with BEGIN_OK). */
        for (sx = ep->sx_head; sx != NULL; sx = sx->next) {
            if ((sx->state == SX_BEGIN_SENT) &&
                (sx->begin_stream == st->idx)) {
                sx->state = SX_BEGIN_WAIT;
            }
        }
    }
    pthread_cond_broadcast(&ep->tx_cond);
    pthread_cond_broadcast(&ep->done_cond);
    pthread_cond_broadcast(&ep->keep_cond);
    pthread_mutex_unlock(&ep->lock);
}

/* Last act of a stream's TX or RX thread: the keeper may join it. */
void scomm_kv_stream_thread_end(kv_stream_t *st)
{
    scomm_kv_ep_t *ep = st->ep;

    pthread_mutex_lock(&ep->lock);
    st->running--;
    pthread_cond_broadcast(&ep->keep_cond);
    pthread_mutex_unlock(&ep->lock);
}

/* ------------------------------------------------------------------------ */
/* Sender                                                                    */
/* ------------------------------------------------------------------------ */

static kv_sx_t *kv_sx_pick(scomm_kv_ep_t *ep, uint32_t *seq)
{
    kv_sx_t *sx, *best = NULL;

    for (sx = ep->sx_head; sx != NULL; sx = sx->next) {
        if ((sx->state != SX_RUN) ||
            ((sx->nresend == 0) && (sx->next_seq >= sx->nchunks))) {
            continue;
        }
        if ((best == NULL) || (sx->priority > best->priority) ||
            ((sx->priority == best->priority) && (sx->order < best->order))) {
            best = sx;
        }
    }
    if (best == NULL) {
        return NULL;
    }
    if (best->nresend > 0) {
        *seq = best->resend[--best->nresend];
    } else {
        *seq = (uint32_t)best->next_seq++;
    }
    return best;
}

int scomm_kv_ensure_buf(uint8_t **buf, size_t *cap, size_t need)
{
    uint8_t *p;

    if (need <= *cap) {
        return 0;
    }
    p = realloc(*buf, need);
    if (p == NULL) {
        return -1;
    }
    *buf = p;
    *cap = need;
    return 0;
}

int scomm_kv_ensure_f(float **buf, size_t *cap, size_t n)
{
    float *p;

    if (n <= *cap) {
        return 0;
    }
    p = realloc(*buf, n * sizeof(float));
    if (p == NULL) {
        return -1;
    }
    *buf = p;
    *cap = n;
    return 0;
}

/* Pack and write chunk seq of sx. 0 or -1 (stream broken). */
static int kv_send_chunk(kv_stream_t *st, kv_sx_t *sx, uint32_t seq)
{
    scomm_kv_ep_t *ep = st->ep;
    kv_region_t *r = &ep->regions[sx->plan.src_region];
    uint32_t li = seq / sx->cpl, c = seq % sx->cpl, i0, i1, i, nb;
    int layer = sx->plan.first_layer + (int)li;
    uint8_t *lbase = r->base + (size_t)layer * r->l.num_blocks * r->bb;
    size_t wbb = scomm_kv_wire_block_bytes(&r->l, sx->wire_dtype);
    struct iovec iov[KV_IOV_BATCH + 1];
    scomm_kv_hdr_t h;
    uint8_t hb[SCOMM_KV_HDR_SIZE];
    uint8_t *raw, *out;
    size_t rawlen, outlen, bound;
    uint32_t crc = 0;
    int rc, k;

    i0 = c * sx->bpc;
    i1 = SCOMM_MIN(i0 + sx->bpc, sx->plan.num_src_blocks);
    nb = i1 - i0;
    memset(&h, 0, sizeof(h));
    h.magic   = SCOMM_KV_MAGIC;
    h.version = SCOMM_KV_VERSION;
    h.xfer_id = sx->plan.xfer_id;
    h.seq     = seq;
    h.aux     = (uint32_t)layer;
    rawlen    = (size_t)nb * wbb;
    h.raw_len = rawlen;
    if ((sx->wire_dtype == SCOMM_KV_WIRE_NATIVE) &&
        (sx->compression == SCOMM_KV_COMPRESS_NONE)) {
        for (i = i0; i < i1; i++) {
            crc = scomm_kv_crc32c(crc, lbase + (size_t)sx->tbl[i] * r->bb,
                                  r->bb);
        }
        h.crc = crc;
        if (sx->cma) {
            h.type = SCOMM_KV_T_DESC;
            h.len  = 0;
            scomm_kv_hdr_encode(&h, hb);
            rc = scomm_kv_io(st, hb, sizeof(hb), 1);
            goto out;
        }
        h.type = SCOMM_KV_T_DATA;
        h.len  = rawlen;
        scomm_kv_hdr_encode(&h, hb);
        /* Zero copy from the registered region: the kernel reads it. The
         * header leads the first writev, so it never goes out as a
         * segment of its own (TCP_NODELAY). */
        iov[0].iov_base = hb;
        iov[0].iov_len  = sizeof(hb);
        rc = 0;
        for (i = i0, k = 1; (rc == 0) && (i < i1); k = 0) {
            for (; (i < i1) && (k < KV_IOV_BATCH + 1); i++, k++) {
                iov[k].iov_base = lbase + (size_t)sx->tbl[i] * r->bb;
                iov[k].iov_len  = r->bb;
            }
            rc = scomm_kv_iov_io(st, iov, k, 1);
        }
        goto out;
    }
    /* Converted and/or compressed: pack into staging. */
    if (scomm_kv_ensure_buf(&st->tbuf[0], &st->tcap[0], rawlen) != 0) {
        snprintf(st->why_tx, sizeof(st->why_tx), "no memory for staging");
        return -1;
    }
    raw = st->tbuf[0];
    if (sx->wire_dtype == SCOMM_KV_WIRE_NATIVE) {
        for (i = i0; i < i1; i++) {
            memcpy(raw + (size_t)(i - i0) * wbb,
                   lbase + (size_t)sx->tbl[i] * r->bb, r->bb);
        }
    } else {
        if (scomm_kv_ensure_f(&st->ftx, &st->ftxcap,
                              (size_t)r->l.block_tokens *
                                  r->l.head_dim) != 0) {
            snprintf(st->why_tx, sizeof(st->why_tx), "no memory for staging");
            return -1;
        }
        for (i = i0; i < i1; i++) {
            scomm_kv_quant_block(&r->l, lbase + (size_t)sx->tbl[i] * r->bb,
                                 sx->wire_dtype, raw + (size_t)(i - i0) * wbb,
                                 st->ftx);
        }
    }
    out    = raw;
    outlen = rawlen;
    if (sx->compression == SCOMM_KV_COMPRESS_LZ4) {
        bound = (size_t)LZ4_compressBound((int)rawlen);
        if (scomm_kv_ensure_buf(&st->tbuf[1], &st->tcap[1], bound) != 0) {
            snprintf(st->why_tx, sizeof(st->why_tx), "no memory for staging");
            return -1;
        }
        outlen = (size_t)LZ4_compress_fast((const char *)raw,
                                           (char *)st->tbuf[1], (int)rawlen,
                                           (int)bound,
                                           (sx->level > 0) ? sx->level : 1);
        out = st->tbuf[1];
    } else if (sx->compression == SCOMM_KV_COMPRESS_ZSTD) {
        bound = ZSTD_compressBound(rawlen);
        if ((scomm_kv_ensure_buf(&st->tbuf[1], &st->tcap[1], bound) != 0) ||
            ((st->zc == NULL) && ((st->zc = ZSTD_createCCtx()) == NULL))) {
            snprintf(st->why_tx, sizeof(st->why_tx), "no memory for staging");
            return -1;
        }
        outlen = ZSTD_compressCCtx(st->zc, st->tbuf[1], bound, raw, rawlen,
                                   (sx->level != 0) ? sx->level : 1);
        if (ZSTD_isError(outlen)) {
            outlen = 0;
        }
        out = st->tbuf[1];
    }
    if ((outlen == 0) || (outlen > SCOMM_KV_CHUNK_MAX)) {
        snprintf(st->why_tx, sizeof(st->why_tx), "compression failed");
        return -1;
    }
    h.type = SCOMM_KV_T_DATA;
    h.crc  = scomm_kv_crc32c(0, out, outlen);
    h.len  = outlen;
    scomm_kv_hdr_encode(&h, hb);
    iov[0].iov_base = hb;
    iov[0].iov_len  = sizeof(hb);
    iov[1].iov_base = out;
    iov[1].iov_len  = outlen;
    rc = scomm_kv_iov_io(st, iov, 2, 1);
out:
    if (rc == 0) {
        pthread_mutex_lock(&ep->lock);
        if (h.type == SCOMM_KV_T_DESC) {
            ep->stats.bytes_zero_copy += (uint64_t)nb * r->bb;
        }
        ep->stats.chunks_sent++;
        ep->stats.bytes_raw  += (uint64_t)nb * r->bb;
        ep->stats.bytes_wire += h.len;
        pthread_mutex_unlock(&ep->lock);
        scomm_tm_add(NULL, SCOMM_TM_KV_CHUNKS, 1);
        scomm_tm_add(NULL, SCOMM_TM_KV_BYTES, (uint64_t)nb * r->bb);
    }
    return rc;
}

static int kv_send_begin(kv_stream_t *st, kv_sx_t *sx)
{
    scomm_kv_ep_t *ep = st->ep;
    kv_region_t *r = &ep->regions[sx->plan.src_region];
    scomm_kv_begin_t b;
    scomm_kv_hdr_t h;
    uint8_t *pl;
    size_t len;
    int rc;

    memset(&b, 0, sizeof(b));
    b.src_layers       = r->l.num_layers;
    b.heads            = r->l.num_kv_heads;
    b.head_dim         = r->l.head_dim;
    b.src_block_tokens = r->l.block_tokens;
    b.src_num_blocks   = r->l.num_blocks;
    b.src_dtype        = (int32_t)r->l.dtype;
    b.src_order        = r->l.order;
    b.wire_dtype       = sx->wire_dtype;
    b.compression      = sx->compression;
    b.first_layer      = sx->plan.first_layer;
    b.num_layers       = sx->plan.num_layers;
    b.dst_region       = sx->plan.dst_region;
    b.blocks_per_chunk = sx->bpc;
    b.num_src_blocks   = sx->plan.num_src_blocks;
    b.num_dst_blocks   = sx->plan.num_dst_blocks;
    b.zero_copy        = (uint32_t)(ep->zero_copy &&
                                    (sx->wire_dtype == 0) &&
                                    (sx->compression == 0));
    b.num_tokens       = sx->plan.num_tokens;
    b.src_base         = (uint64_t)(uintptr_t)r->base;
    b.src_bytes        = r->bytes;
    b.nchunks          = sx->nchunks;
    b.src_blocks       = sx->tbl;
    b.dst_blocks       = sx->tbl + sx->plan.num_src_blocks;
    len = scomm_kv_begin_size(&b);
    pl  = malloc(len);
    if (pl == NULL) {
        snprintf(st->why_tx, sizeof(st->why_tx), "out of memory for a BEGIN");
        return -1;
    }
    scomm_kv_begin_encode(&b, pl);
    memset(&h, 0, sizeof(h));
    h.type    = SCOMM_KV_T_BEGIN;
    h.xfer_id = sx->plan.xfer_id;
    rc = scomm_kv_send_hdr(st, &h, pl, len);
    free(pl);
    return rc;
}

void *scomm_kv_tx_main(void *arg)
{
    kv_stream_t *st = arg;
    scomm_kv_ep_t *ep = st->ep;
    scomm_kv_hdr_t h;
    kv_ctl_t c;
    kv_sx_t *sx;
    uint32_t seq;
    struct timespec ts;
    int rc, slot;

    pthread_mutex_lock(&ep->lock);
    /* On close, replies already queued (the last ACKs) still go out. */
    while (st->alive && (!ep->closing || (st->ctl_n > 0))) {
        if (st->ctl_n > 0) {
            c = st->ctl[st->ctl_head];
            st->ctl_head = (st->ctl_head + 1) % st->ctl_cap;
            st->ctl_n--;
            pthread_mutex_unlock(&ep->lock);
            rc = scomm_kv_send_hdr(st, &c.h, c.text,
                                   (c.text[0] != '\0') ? strlen(c.text) + 1
                                                       : 0);
            pthread_mutex_lock(&ep->lock);
            if (rc != 0) {
                break;
            }
            continue;
        }
        if (ep->closing) {
            break;
        }
        for (sx = ep->sx_head; sx != NULL; sx = sx->next) {
            if (sx->state == SX_BEGIN_WAIT) {
                break;
            }
        }
        if (sx != NULL) {
            sx->state = SX_BEGIN_SENT;
            sx->begin_stream = st->idx;
            sx->refs++;
            pthread_mutex_unlock(&ep->lock);
            rc = kv_send_begin(st, sx);
            pthread_mutex_lock(&ep->lock);
            if ((rc != 0) && (sx->state == SX_BEGIN_SENT)) {
                sx->state = SX_BEGIN_WAIT;
            }
            scomm_kv_sx_unref(ep, sx);
            if (rc != 0) {
                break;
            }
            continue;
        }
        if ((st->inf_n < ep->depth) && ((sx = kv_sx_pick(ep, &seq)) != NULL)) {
            slot = (st->inf_head + st->inf_n) % ep->depth;
            st->inf[slot].sx  = sx;
            st->inf[slot].seq = seq;
            st->inf_n++;
            /* One reference for the in-flight entry (dropped when the
             * reply comes, possibly before kv_send_chunk returns: with CMA
             * the receiver pulls and ACKs at once), one for kv_send_chunk's
             * own use of sx. */
            sx->refs += 2;
            pthread_mutex_unlock(&ep->lock);
            rc = kv_send_chunk(st, sx, seq);
            pthread_mutex_lock(&ep->lock);
            scomm_kv_sx_unref(ep, sx);
            if (rc != 0) {
                break;
            }
            continue;
        }
        if (scomm_now_ns() - st->last_tx > (uint64_t)KV_HB_MS * 1000000ull) {
            pthread_mutex_unlock(&ep->lock);
            memset(&h, 0, sizeof(h));
            h.type = SCOMM_KV_T_HEARTBEAT;
            rc = scomm_kv_send_hdr(st, &h, NULL, 0);
            pthread_mutex_lock(&ep->lock);
            if (rc != 0) {
                break;
            }
            continue;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&ep->tx_cond, &ep->lock, &ts);
    }
    if (ep->closing && st->alive) {
        pthread_mutex_unlock(&ep->lock);
        memset(&h, 0, sizeof(h));
        h.type = SCOMM_KV_T_BYE;
        (void)scomm_kv_send_hdr(st, &h, NULL, 0);
        scomm_kv_stream_thread_end(st);
        return NULL;
    }
    pthread_mutex_unlock(&ep->lock);
    scomm_kv_stream_dead(st, st->why_tx[0] ? st->why_tx : "write failed");
    scomm_kv_stream_thread_end(st);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Receiver                                                                  */
/* ------------------------------------------------------------------------ */

void scomm_kv_abs_deadline(struct timespec *ts, uint64_t deadline);

kv_rx_t *scomm_kv_rx_find(scomm_kv_ep_t *ep, uint64_t id)
{
    kv_rx_t *rx;

    for (rx = ep->rx_head; rx != NULL; rx = rx->next) {
        if (rx->id == id) {
            return rx;
        }
    }
    return NULL;
}

void scomm_kv_rx_free(kv_rx_t *rx)
{
    scomm_kv_begin_free(&rx->b);
    free(rx->layer_left);
    free(rx->got);
    free(rx);
}

/* Check a BEGIN against the destination region; 0 or -1 with a reason. */
static int kv_rx_validate(scomm_kv_ep_t *ep, const scomm_kv_begin_t *b,
                          const scomm_kv_layout_t *sl, char *why, size_t whylen)
{
    const kv_region_t *r;
    uint64_t need;
    uint32_t i;

    if ((b->dst_region < 0) || (b->dst_region >= SCOMM_KV_MAX_REGIONS) ||
        !ep->regions[b->dst_region].used) {
        snprintf(why, whylen, "destination region %d is not registered",
                 b->dst_region);
        return -1;
    }
    r = &ep->regions[b->dst_region];
    if ((r->l.num_kv_heads != b->heads) || (r->l.head_dim != b->head_dim)) {
        snprintf(why, whylen, "metadata mismatch: sender has %d kv heads x "
                 "dim %d, receiver region %d has %d x %d", b->heads,
                 b->head_dim, b->dst_region, r->l.num_kv_heads,
                 r->l.head_dim);
        return -1;
    }
    if (b->first_layer + b->num_layers > r->l.num_layers) {
        snprintf(why, whylen, "metadata mismatch: layers %d..%d but the "
                 "receiver has %d", b->first_layer,
                 b->first_layer + b->num_layers - 1, r->l.num_layers);
        return -1;
    }
    need = (b->num_tokens + (uint64_t)r->l.block_tokens - 1) /
           (uint64_t)r->l.block_tokens;
    if (b->num_dst_blocks != need) {
        snprintf(why, whylen, "metadata mismatch: %u destination blocks for "
                 "%llu tokens of %d", b->num_dst_blocks,
                 (unsigned long long)b->num_tokens, r->l.block_tokens);
        return -1;
    }
    for (i = 0; i < b->num_dst_blocks; i++) {
        if ((b->dst_blocks[i] < 0) ||
            (b->dst_blocks[i] >= r->l.num_blocks)) {
            snprintf(why, whylen, "destination block %d outside region %d "
                     "(%d blocks)", b->dst_blocks[i], b->dst_region,
                     r->l.num_blocks);
            return -1;
        }
    }
    if ((uint64_t)b->blocks_per_chunk *
            scomm_kv_wire_block_bytes(sl, b->wire_dtype) >
        SCOMM_KV_CHUNK_MAX) {
        snprintf(why, whylen, "chunks of %u blocks exceed the limit",
                 b->blocks_per_chunk);
        return -1;
    }
    return 0;
}

static void kv_on_begin(kv_stream_t *st, const scomm_kv_hdr_t *hh, uint8_t *pl)
{
    scomm_kv_ep_t *ep = st->ep;
    char why[SCOMM_KV_ERRTEXT_MAX] = "";
    scomm_kv_hdr_t h;
    kv_rx_t *rx, *old;
    const kv_region_t *r;
    struct timespec ts;
    uint64_t deadline;
    uint32_t i;
    int bad;

    rx = calloc(1, sizeof(*rx));
    if (rx == NULL) {
        return;
    }
    rx->id = hh->xfer_id;
    bad = scomm_kv_begin_decode(pl, hh->len, &rx->b, why, sizeof(why));
    rx->sl.num_layers   = rx->b.src_layers;
    rx->sl.num_kv_heads = rx->b.heads;
    rx->sl.head_dim     = rx->b.head_dim;
    rx->sl.block_tokens = rx->b.src_block_tokens;
    rx->sl.num_blocks   = rx->b.src_num_blocks;
    rx->sl.dtype        = (scomm_dtype_t)rx->b.src_dtype;
    rx->sl.order        = rx->b.src_order;
    pthread_mutex_lock(&ep->lock);
    /* The receiver may register its region after the sender submitted:
     * wait for it, under the endpoint's timeout. */
    deadline = scomm_deadline_ms(ep->timeout_ms);
    while ((bad == 0) && (rx->b.dst_region >= 0) &&
           (rx->b.dst_region < SCOMM_KV_MAX_REGIONS) &&
           !ep->regions[rx->b.dst_region].used && !ep->closing &&
           st->alive && (scomm_now_ns() < deadline)) {
        scomm_kv_abs_deadline(&ts, deadline);
        pthread_cond_timedwait(&ep->done_cond, &ep->lock, &ts);
    }
    if (!st->alive) {
        /* The stream broke meanwhile: no reply can go out on it, and the
         * sender sends this BEGIN again on a live (or re-dialled) one. */
        pthread_mutex_unlock(&ep->lock);
        scomm_kv_rx_free(rx);
        return;
    }
    old = scomm_kv_rx_find(ep, rx->id);
    if ((bad == 0) && (old != NULL) && (old->status == SCOMM_OK)) {
        /* A BEGIN repeated after a stream broke: answer it again. */
        memset(&h, 0, sizeof(h));
        h.xfer_id = rx->id;
        h.type    = SCOMM_KV_T_BEGIN_OK;
        h.aux     = (uint32_t)old->cma;
        scomm_kv_ctl_push(st, &h, NULL);
        pthread_mutex_unlock(&ep->lock);
        scomm_kv_rx_free(rx);
        return;
    }
    if ((bad == 0) && (old != NULL)) {
        snprintf(why, sizeof(why), "transfer id %llu is in use",
                 (unsigned long long)rx->id);
        bad = -1;
    }
    if (bad == 0) {
        bad = kv_rx_validate(ep, &rx->b, &rx->sl, why, sizeof(why));
    }
    if (bad == 0) {
        r = &ep->regions[rx->b.dst_region];
        rx->region = rx->b.dst_region;
        rx->direct = (rx->b.wire_dtype == 0) && (rx->b.compression == 0) &&
                     (r->l.dtype == rx->sl.dtype) &&
                     (r->l.order == rx->sl.order) &&
                     (r->l.block_tokens == rx->sl.block_tokens);
        rx->cma = rx->b.zero_copy && ep->cma_read_ok && !ep->no_cma;
        rx->layer_left = calloc((size_t)rx->b.num_layers, sizeof(uint32_t));
        rx->got = calloc(rx->b.nchunks + 1, 1);
        if ((rx->layer_left == NULL) || (rx->got == NULL)) {
            snprintf(why, sizeof(why), "receiver out of memory");
            bad = -1;
        } else {
            for (i = 0; i < (uint32_t)rx->b.num_layers; i++) {
                rx->layer_left[i] = (uint32_t)(rx->b.nchunks /
                                               (uint64_t)rx->b.num_layers);
            }
        }
    }
    memset(&h, 0, sizeof(h));
    h.xfer_id = rx->id;
    if (bad != 0) {
        /* Keep a failed record so the receiver's waits report it. */
        rx->status = SCOMM_ERR_MISMATCH;
        snprintf(rx->msg, sizeof(rx->msg), "kv transfer %llu refused: %s",
                 (unsigned long long)rx->id, why);
        scomm_warn(SCOMM_SUB_KV, "%s", rx->msg);
        h.type = SCOMM_KV_T_BEGIN_ERR;
        scomm_kv_ctl_push(st, &h, why);
        if (scomm_kv_rx_find(ep, rx->id) == NULL) {
            rx->next = ep->rx_head;
            ep->rx_head = rx;
        } else {
            scomm_kv_rx_free(rx);
        }
    } else {
        h.type = SCOMM_KV_T_BEGIN_OK;
        h.aux  = (uint32_t)rx->cma;
        scomm_kv_ctl_push(st, &h, NULL);
        rx->next = ep->rx_head;
        ep->rx_head = rx;
    }
    pthread_cond_broadcast(&ep->done_cond);
    pthread_mutex_unlock(&ep->lock);
}

static int kv_discard(kv_stream_t *st, uint64_t len)
{
    uint8_t junk[16384];
    size_t n;

    while (len > 0) {
        n = (size_t)SCOMM_MIN(len, (uint64_t)sizeof(junk));
        if (scomm_kv_io(st, junk, n, 0) != 0) {
            return -1;
        }
        len -= n;
    }
    return 0;
}

static uint32_t kv_crc_iov(const struct iovec *iov, int n)
{
    uint32_t crc = 0;
    int i;

    for (i = 0; i < n; i++) {
        crc = scomm_kv_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
    }
    return crc;
}

/* Store one DATA or DESC chunk. 0, or -1 when the stream must go. */
static int kv_on_chunk(kv_stream_t *st, const scomm_kv_hdr_t *hh)
{
    scomm_kv_ep_t *ep = st->ep;
    scomm_kv_hdr_t h;
    kv_rx_t *rx;
    kv_region_t *r;
    uint32_t li, c, i0, i1, i, nb, cpl;
    size_t sbb, wbb, rawlen, n;
    uint8_t *dlayer, *raw = NULL;
    struct iovec *liov = NULL, *riov = NULL;
    uint64_t sbase;
    uint32_t crc;
    int ok = 1, store = 1, rc = 0, k;

    pthread_mutex_lock(&ep->lock);
    rx = scomm_kv_rx_find(ep, hh->xfer_id);
    while ((rx != NULL) && (rx->status == SCOMM_OK) &&
           (hh->seq < rx->b.nchunks) &&
           (rx->got[hh->seq] == KV_CHUNK_STORING) && !ep->closing &&
           (ep->fault == SCOMM_OK)) {
        /* Its other copy is being stored: take this one only if that
         * store fails. The storer always reaches release below. */
        pthread_cond_wait(&ep->done_cond, &ep->lock);
        rx = scomm_kv_rx_find(ep, hh->xfer_id);
    }
    if ((rx == NULL) || (rx->status != SCOMM_OK) ||
        (hh->seq >= rx->b.nchunks) ||
        (rx->got[hh->seq] != KV_CHUNK_MISSING)) {
        store = 0;
    } else {
        rx->refs++;
        rx->got[hh->seq] = KV_CHUNK_STORING;
    }
    pthread_mutex_unlock(&ep->lock);
    if (!store) {
        /* Unknown, finished or duplicate: drop it, still answer. */
        if ((hh->type == SCOMM_KV_T_DATA) && (kv_discard(st, hh->len) != 0)) {
            return -1;
        }
        goto reply;
    }
    r      = &ep->regions[rx->region];
    cpl    = (uint32_t)(rx->b.nchunks / (uint64_t)rx->b.num_layers);
    li     = hh->seq / cpl;
    c      = hh->seq % cpl;
    i0     = c * rx->b.blocks_per_chunk;
    i1     = SCOMM_MIN(i0 + rx->b.blocks_per_chunk, rx->b.num_src_blocks);
    nb     = i1 - i0;
    sbb    = (size_t)scomm_kv_block_bytes(&rx->sl);
    wbb    = scomm_kv_wire_block_bytes(&rx->sl, rx->b.wire_dtype);
    rawlen = (size_t)nb * wbb;
    dlayer = r->base + (size_t)(rx->b.first_layer + (int)li) *
                           r->l.num_blocks * r->bb;
    if ((hh->raw_len != rawlen) ||
        ((hh->type == SCOMM_KV_T_DATA) && (rx->b.compression == 0) &&
         (hh->len != rawlen)) ||
        ((hh->type == SCOMM_KV_T_DESC) && !rx->cma)) {
        snprintf(st->why, sizeof(st->why), "chunk %u of transfer %llu: %llu "
                 "bytes (%llu raw), expected %zu", hh->seq,
                 (unsigned long long)hh->xfer_id,
                 (unsigned long long)hh->len,
                 (unsigned long long)hh->raw_len, rawlen);
        rc = -1;
        goto release;
    }
    if (rx->direct) {
        liov = malloc(sizeof(*liov) * nb);
        if (liov == NULL) {
            rc = -1;
            goto release;
        }
        for (i = i0; i < i1; i++) {
            liov[i - i0].iov_base = dlayer + (size_t)rx->b.dst_blocks[i] *
                                                 r->bb;
            liov[i - i0].iov_len  = r->bb;
        }
    } else {
        if (scomm_kv_ensure_buf(&st->rbuf[0], &st->rcap[0],
                                hh->len + rawlen) != 0) {
            rc = -1;
            goto release;
        }
        raw = st->rbuf[0];
    }
    if (hh->type == SCOMM_KV_T_DESC) {
        /* Same host: copy straight out of the sender's region. */
        struct iovec one;

        riov = malloc(sizeof(*riov) * nb);
        if (riov == NULL) {
            rc = -1;
            goto release;
        }
        sbase = rx->b.src_base + (uint64_t)(rx->b.first_layer + (int)li) *
                                     (uint64_t)rx->b.src_num_blocks * sbb;
        for (i = i0; i < i1; i++) {
            riov[i - i0].iov_base = (void *)(uintptr_t)(
                sbase + (uint64_t)rx->b.src_blocks[i] * sbb);
            riov[i - i0].iov_len = sbb;
        }
        one.iov_base = raw;
        one.iov_len  = rawlen;
        for (k = 0; k < (int)nb; k += KV_IOV_BATCH) {
            int cnt = SCOMM_MIN((int)nb - k, KV_IOV_BATCH);
            ssize_t want = (ssize_t)((size_t)cnt * sbb), got;

            if (rx->direct) {
                got = process_vm_readv(ep->peer_pid, liov + k,
                                       (unsigned long)cnt, riov + k,
                                       (unsigned long)cnt, 0);
            } else {
                struct iovec part = { (uint8_t *)one.iov_base +
                                      (size_t)k * sbb, (size_t)want };
                got = process_vm_readv(ep->peer_pid, &part, 1, riov + k,
                                       (unsigned long)cnt, 0);
            }
            if (got != want) {
                snprintf(st->why, sizeof(st->why), "process_vm_readv from "
                         "pid %d: %s", ep->peer_pid,
                         (got < 0) ? strerror(errno) : "short read");
                rc = -1;
                goto release;
            }
        }
        st->last_rx = scomm_now_ns();
        pthread_mutex_lock(&ep->lock);
        ep->stats.bytes_zero_copy += rawlen;
        pthread_mutex_unlock(&ep->lock);
    } else if (rx->direct) {
        if (scomm_kv_iov_io(st, liov, (int)nb, 0) != 0) {
            rc = -1;
            goto release;
        }
        for (i = i0; i < i1; i++) { /* scomm_kv_iov_io consumed the iovec */
            liov[i - i0].iov_base = dlayer + (size_t)rx->b.dst_blocks[i] *
                                                 r->bb;
            liov[i - i0].iov_len  = r->bb;
        }
    } else if (scomm_kv_io(st, raw, hh->len, 0) != 0) {
        rc = -1;
        goto release;
    }
    if (atomic_load(&ep->corrupt_n) > 0) {
        if (atomic_fetch_sub(&ep->corrupt_n, 1) > 0) {
            uint8_t *p = rx->direct ? (uint8_t *)liov[0].iov_base : raw;

            p[(rx->direct ? r->bb : ((hh->type == SCOMM_KV_T_DESC)
                                         ? rawlen : hh->len)) / 2] ^= 0x40;
        }
    }
    if (rx->direct) {
        crc = kv_crc_iov(liov, (int)nb);
    } else {
        crc = scomm_kv_crc32c(0, raw,
                              (hh->type == SCOMM_KV_T_DESC) ? rawlen : hh->len);
    }
    if (crc != hh->crc) {
        ok = 0;
        pthread_mutex_lock(&ep->lock);
        ep->stats.crc_errors++;
        scomm_tm_add(NULL, SCOMM_TM_KV_CHECKSUM_FAILURES, 1);
        pthread_mutex_unlock(&ep->lock);
        scomm_info(SCOMM_SUB_KV, "chunk %u of transfer %llu failed CRC32C "
                   "(0x%08x, sender 0x%08x): asking again", hh->seq,
                   (unsigned long long)hh->xfer_id, crc, hh->crc);
        goto release;
    }
    if (!rx->direct) {
        if ((hh->type == SCOMM_KV_T_DATA) && (rx->b.compression != 0)) {
            uint8_t *dst = raw + hh->len;

            if (rx->b.compression == SCOMM_KV_COMPRESS_LZ4) {
                k = LZ4_decompress_safe((const char *)raw, (char *)dst,
                                        (int)hh->len, (int)rawlen);
                n = (k < 0) ? 0 : (size_t)k;
            } else {
                if ((st->zd == NULL) &&
                    ((st->zd = ZSTD_createDCtx()) == NULL)) {
                    rc = -1;
                    goto release;
                }
                n = ZSTD_decompressDCtx(st->zd, dst, rawlen, raw, hh->len);
                if (ZSTD_isError(n)) {
                    n = 0;
                }
            }
            if (n != rawlen) {
                snprintf(st->why, sizeof(st->why), "chunk %u: bad "
                         "compressed data", hh->seq);
                rc = -1;
                goto release;
            }
            raw = dst;
        }
        n = (size_t)r->l.head_dim;
        if (rx->b.wire_dtype != 0) {
            n = 2 * (size_t)rx->sl.num_kv_heads * rx->sl.block_tokens *
                rx->sl.head_dim + n;
        }
        if (scomm_kv_ensure_f(&st->ftmp, &st->fcap, n) != 0) {
            rc = -1;
            goto release;
        }
        for (i = i0; i < i1; i++) {
            uint64_t gbase = (uint64_t)i * (uint64_t)rx->sl.block_tokens;
            int t1 = rx->sl.block_tokens;
            const uint8_t *sblk = raw + (size_t)(i - i0) * wbb;
            float *fr = NULL;

            if (rx->sl.block_tokens != r->l.block_tokens) {
                t1 = (int)SCOMM_MIN((uint64_t)t1, rx->b.num_tokens - gbase);
            } else if ((rx->b.wire_dtype != 0) &&
                       (scomm_kv_decode_block_into(
                            &rx->sl, sblk, rx->b.wire_dtype, &r->l,
                            dlayer + (size_t)rx->b.dst_blocks[i] * r->bb) ==
                        0)) {
                continue; /* decoded straight into its block */
            }
            if (rx->b.wire_dtype != 0) {
                fr = st->ftmp + r->l.head_dim;
                scomm_kv_dequant_block(&rx->sl, sblk, rx->b.wire_dtype, fr);
            }
            scomm_kv_scatter_rows(&rx->sl, sblk, fr, gbase, 0, t1, &r->l,
                                  dlayer, rx->b.dst_blocks, st->ftmp);
        }
    }
release:
    pthread_mutex_lock(&ep->lock);
    if (rc == 0) {
        /* Queue the reply before a waiter can see the chunk stored: it may
         * close the endpoint at once, and the close flushes only what is
         * queued. */
        memset(&h, 0, sizeof(h));
        h.type    = ok ? SCOMM_KV_T_ACK : SCOMM_KV_T_NACK;
        h.xfer_id = hh->xfer_id;
        h.seq     = hh->seq;
        if (scomm_kv_ctl_push(st, &h, NULL) != 0) {
            rc = -1;
        }
    }
    if ((rc == 0) && ok) {
        rx->got[hh->seq] = KV_CHUNK_STORED;
        rx->ndone++;
        ep->stats.chunks_recv++;
        --rx->layer_left[li];
    } else {
        rx->got[hh->seq] = KV_CHUNK_MISSING; /* a later copy may store it */
    }
    rx->refs--;
    /* Layer waiters, kv_rx_wait's wait for refs, and a copy of this chunk
     * waiting on another stream. */
    pthread_cond_broadcast(&ep->done_cond);
    pthread_mutex_unlock(&ep->lock);
    free(liov);
    free(riov);
    return rc;
reply:
    memset(&h, 0, sizeof(h));
    h.type    = ok ? SCOMM_KV_T_ACK : SCOMM_KV_T_NACK;
    h.xfer_id = hh->xfer_id;
    h.seq     = hh->seq;
    pthread_mutex_lock(&ep->lock);
    rc = scomm_kv_ctl_push(st, &h, NULL);
    pthread_mutex_unlock(&ep->lock);
    return rc;
}

/* ACK/NACK/BEGIN_OK/BEGIN_ERR for our transfers. */
int scomm_kv_on_reply(kv_stream_t *st, const scomm_kv_hdr_t *h,
                      const char *text)
{
    scomm_kv_ep_t *ep = st->ep;
    char msg[SCOMM_KV_ERRTEXT_MAX];
    kv_sx_t *sx;
    kv_inf_t *e;
    int rc = 0;

    pthread_mutex_lock(&ep->lock);
    if ((h->type == SCOMM_KV_T_BEGIN_OK) ||
        (h->type == SCOMM_KV_T_BEGIN_ERR)) {
        for (sx = ep->sx_head; sx != NULL; sx = sx->next) {
            if ((sx->plan.xfer_id == h->xfer_id) &&
                (sx->state == SX_BEGIN_SENT)) {
                break;
            }
        }
        if (sx != NULL) {
            if (h->type == SCOMM_KV_T_BEGIN_OK) {
                sx->state = SX_RUN;
                sx->cma   = (int)(h->aux & 1u);
            } else {
                snprintf(msg, sizeof(msg), "kv transfer %llu refused by the "
                         "receiver: %s", (unsigned long long)h->xfer_id,
                         text);
                scomm_kv_sx_fail(sx, SCOMM_ERR_MISMATCH, msg);
            }
            pthread_cond_broadcast(&ep->tx_cond);
            pthread_cond_broadcast(&ep->done_cond);
        }
        pthread_mutex_unlock(&ep->lock);
        return 0;
    }
    if (st->inf_n == 0) {
        snprintf(st->why, sizeof(st->why), "reply to chunk %u with none in "
                 "flight", h->seq);
        pthread_mutex_unlock(&ep->lock);
        return -1;
    }
    e = &st->inf[st->inf_head];
    if ((e->sx->plan.xfer_id != h->xfer_id) || (e->seq != h->seq)) {
        snprintf(st->why, sizeof(st->why), "reply to chunk %u of %llu, "
                 "expected %u of %llu", h->seq,
                 (unsigned long long)h->xfer_id, e->seq,
                 (unsigned long long)e->sx->plan.xfer_id);
        pthread_mutex_unlock(&ep->lock);
        return -1;
    }
    sx = e->sx;
    st->inf_head = (st->inf_head + 1) % ep->depth;
    st->inf_n--;
    if (sx->state == SX_RUN) {
        if (h->type == SCOMM_KV_T_ACK) {
            if (!sx->acked_map[h->seq]) {
                sx->acked_map[h->seq] = 1;
                if (++sx->acked == sx->nchunks) {
                    sx->state  = SX_DONE;
                    sx->status = SCOMM_OK;
                    scomm_tm_add(NULL, SCOMM_TM_KV_TRANSFERS, 1);
                    scomm_tm_kv_latency(scomm_now_ns() - sx->t_submit);
                    pthread_cond_broadcast(&ep->done_cond);
                }
            }
        } else if (++sx->nacks[h->seq] > KV_MAX_NACKS) {
            snprintf(msg, sizeof(msg), "kv transfer %llu: chunk %u failed "
                     "its CRC32C check %d times", (unsigned long long)
                     sx->plan.xfer_id, h->seq, KV_MAX_NACKS);
            scomm_kv_sx_fail(sx, SCOMM_ERR_CHECKSUM, msg);
            pthread_cond_broadcast(&ep->done_cond);
        } else {
            sx->resend[sx->nresend++] = h->seq;
            ep->stats.chunks_resent++;
            scomm_tm_add(NULL, SCOMM_TM_KV_RESENT, 1);
        }
    }
    scomm_kv_sx_unref(ep, sx);
    pthread_cond_broadcast(&ep->tx_cond);
    pthread_mutex_unlock(&ep->lock);
    return rc;
}

void *scomm_kv_rx_main(void *arg)
{
    kv_stream_t *st = arg;
    scomm_kv_ep_t *ep = st->ep;
    uint8_t hb[SCOMM_KV_HDR_SIZE];
    char text[SCOMM_KV_ERRTEXT_MAX + 1];
    scomm_kv_hdr_t h;
    uint8_t *pl;

    for (;;) {
        if (scomm_kv_io(st, hb, sizeof(hb), 0) != 0) {
            break;
        }
        scomm_kv_hdr_decode(hb, &h);
        if (scomm_kv_hdr_check(&h, SCOMM_KV_CHUNK_MAX, st->why,
                               sizeof(st->why)) != 0) {
            break;
        }
        switch (h.type) {
        case SCOMM_KV_T_BEGIN:
            pl = malloc(h.len + 1);
            if ((pl == NULL) || (scomm_kv_io(st, pl, h.len, 0) != 0)) {
                free(pl);
                goto out;
            }
            kv_on_begin(st, &h, pl);
            free(pl);
            break;
        case SCOMM_KV_T_DATA:
        case SCOMM_KV_T_DESC:
            if (kv_on_chunk(st, &h) != 0) {
                goto out;
            }
            break;
        case SCOMM_KV_T_BEGIN_ERR:
        case SCOMM_KV_T_BEGIN_OK:
        case SCOMM_KV_T_ACK:
        case SCOMM_KV_T_NACK:
            text[0] = '\0';
            if ((h.len > 0) && (scomm_kv_io(st, text, h.len, 0) != 0)) {
                goto out;
            }
            text[h.len] = '\0';
            if (scomm_kv_on_reply(st, &h, text) != 0) {
                goto out;
            }
            break;
        case SCOMM_KV_T_BYE:
            pthread_mutex_lock(&ep->lock);
            ep->peer_bye = 1;
            pthread_mutex_unlock(&ep->lock);
            break;
        case SCOMM_KV_T_HEARTBEAT:
            break;
        default:
            snprintf(st->why, sizeof(st->why), "unexpected frame type %u",
                     (unsigned)h.type);
            goto out;
        }
    }
out:
    scomm_kv_stream_dead(st, st->why[0] ? st->why : "read failed");
    scomm_kv_stream_thread_end(st);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Endpoint creation                                                         */
/* ------------------------------------------------------------------------ */

static scomm_kv_ep_t *kv_ep_new(const kv_cfg_t *c)
{
    scomm_kv_ep_t *ep = calloc(1, sizeof(*ep));
    int i;

    if (ep == NULL) {
        return NULL;
    }
    pthread_mutex_init(&ep->lock, NULL);
    pthread_cond_init(&ep->tx_cond, NULL);
    pthread_cond_init(&ep->done_cond, NULL);
    pthread_cond_init(&ep->keep_cond, NULL);
    ep->lfd         = -1;
    ep->pidfd       = -1;
    ep->chunk_size  = c->chunk_size;
    ep->depth       = c->depth;
    ep->zero_copy   = c->zero_copy;
    ep->compression = c->compression;
    ep->level       = c->level;
    ep->wire_dtype  = c->wire_dtype;
    ep->timeout_ms  = c->timeout_ms;
    scomm_random_bytes(&ep->probe_val, sizeof(ep->probe_val));
    for (i = 0; i < SCOMM_KV_MAX_STREAMS; i++) {
        ep->st[i].fd  = -1;
        ep->st[i].idx = i;
        ep->st[i].ep  = ep;
    }
    return ep;
}

static void kv_ep_free(scomm_kv_ep_t *ep)
{
    kv_rx_t *rx;
    int i;

    for (i = 0; i < SCOMM_KV_MAX_STREAMS; i++) {
        kv_stream_t *st = &ep->st[i];

        if (st->fd >= 0) {
            close(st->fd);
        }
        free(st->ctl);
        free(st->inf);
        free(st->tbuf[0]);
        free(st->tbuf[1]);
        free(st->rbuf[0]);
        free(st->rbuf[1]);
        free(st->ftmp);
        free(st->ftx);
        ZSTD_freeCCtx(st->zc);
        ZSTD_freeDCtx(st->zd);
    }
    while ((rx = ep->rx_head) != NULL) {
        ep->rx_head = rx->next;
        scomm_kv_rx_free(rx);
    }
    if (ep->lfd >= 0) {
        close(ep->lfd);
    }
    if (ep->pidfd >= 0) {
        close(ep->pidfd);
    }
    pthread_mutex_destroy(&ep->lock);
    pthread_cond_destroy(&ep->tx_cond);
    pthread_cond_destroy(&ep->done_cond);
    pthread_cond_destroy(&ep->keep_cond);
    free(ep);
}

/* 1 if we can read probe_val at addr in pid. */
static int kv_cma_probe(int pid, uint64_t addr, uint64_t val)
{
    uint64_t got = 0;
    struct iovec l = { &got, sizeof(got) };
    struct iovec r = { (void *)(uintptr_t)addr, sizeof(got) };

    if ((pid <= 0) || (pid == getpid())) {
        return (pid == getpid()) && (addr != 0) &&
               (*(const uint64_t *)(uintptr_t)addr == val);
    }
    if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)sizeof(got)) {
        return 0;
    }
    return got == val;
}

void *scomm_kv_keeper_main(void *arg);
void scomm_kv_stream_give_up(scomm_kv_ep_t *ep, kv_stream_t *st,
                             const char *how);

/* Start the threads of an endpoint whose nstreams fds are set. */
static scomm_status_t kv_ep_start(scomm_kv_ep_t *ep)
{
    int i;

    /* Set before any stream thread can lose its stream. */
    ep->reconnect_on = (ep->redial_ms > 0);
    for (i = 0; i < ep->nstreams; i++) {
        kv_stream_t *st = &ep->st[i];

        st->inf = calloc((size_t)ep->depth, sizeof(*st->inf));
        if (st->inf == NULL) {
            return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv: out of memory");
        }
        scomm_set_nonblock(st->fd);
        scomm_sock_tune(st->fd, 0);
        st->alive   = 1;
        st->running = 2;
        st->last_rx = st->last_tx = scomm_now_ns();
    }
    ep->alive = ep->nstreams;
    ep->stats.streams = ep->nstreams;
    ep->stats.same_host = ep->cma_read_ok;
    for (i = 0; i < ep->nstreams; i++) {
        if (pthread_create(&ep->st[i].rx, NULL, scomm_kv_rx_main,
                           &ep->st[i]) != 0) {
            return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv: pthread_create failed");
        }
        ep->st[i].rx_started = 1;
        if (pthread_create(&ep->st[i].tx, NULL, scomm_kv_tx_main,
                           &ep->st[i]) != 0) {
            return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv: pthread_create failed");
        }
        ep->st[i].tx_started = 1;
    }
    if (ep->reconnect_on) {
        /* Same host and pid namespace (the probe read the peer's memory):
         * the peer's exit is seen at once, so the accepting side need not
         * wait out the window for a re-dial that cannot come. (The
         * dialler needs no such help: a dead peer's port refuses.) */
        if (ep->cma_read_ok && !ep->dialer) {
            ep->pidfd = scomm_pidfd_open((pid_t)ep->peer_pid);
        }
        /* Last: the keeper reads what the loop above wrote. */
        if (pthread_create(&ep->keeper, NULL, scomm_kv_keeper_main, ep) == 0) {
            ep->keeper_started = 1;
        } else {
            scomm_warn(SCOMM_SUB_KV, "kv: no reconnect thread: lost streams "
                       "stay lost");
            pthread_mutex_lock(&ep->lock);
            ep->reconnect_on = 0;
            for (i = 0; i < ep->nstreams; i++) {
                if (ep->st[i].pending) {
                    scomm_kv_stream_give_up(ep, &ep->st[i], "no reconnect "
                                            "thread");
                }
            }
            pthread_mutex_unlock(&ep->lock);
        }
    }
    return SCOMM_OK;
}

/* epoch 0: a first connection; else a re-dial (HELLO) or the answer to
 * one (HELLO_OK). The dialler names its re-dial window, the accepting side
 * the port that takes re-dials. */
static void kv_fill_hello(scomm_kv_ep_t *ep, const char *token,
                          uint64_t session, int idx, int n, uint32_t epoch,
                          uint8_t *out)
{
    scomm_kv_hello_t h;

    memset(&h, 0, sizeof(h));
    snprintf(h.token, sizeof(h.token), "%s", token);
    h.session    = session;
    h.stream     = (uint32_t)idx;
    h.nstreams   = (uint32_t)n;
    h.pid        = (int32_t)getpid();
    h.flags      = (epoch != 0) ? SCOMM_KV_HELLO_RESUME : 0;
    h.port       = ep->dialer ? 0 : (uint16_t)ep->rport;
    h.probe_addr = (uint64_t)(uintptr_t)&ep->probe_val;
    h.probe_val  = ep->probe_val;
    h.epoch      = epoch;
    h.redial_ms  = ep->dialer ? (uint32_t)ep->redial_ms : 0;
    scomm_kv_hello_encode(&h, out);
}

/* Read and check the HELLO that opens a connection: 1 if it is one. */
int scomm_kv_hs_read_hello(int fd, uint64_t deadline, scomm_kv_hello_t *hello,
                           char *why, size_t whylen)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE], pl[SCOMM_KV_HELLO_SIZE];
    scomm_kv_hdr_t h;

    why[0] = '\0';
    if (scomm_kv_hs_io(fd, hb, sizeof(hb), 0, deadline) != 0) {
        return 0;
    }
    scomm_kv_hdr_decode(hb, &h);
    return (scomm_kv_hdr_check(&h, 0, why, whylen) == 0) &&
           (h.type == SCOMM_KV_T_HELLO) &&
           (scomm_kv_hs_io(fd, pl, sizeof(pl), 0, deadline) == 0) &&
           (scomm_kv_hello_decode(pl, sizeof(pl), hello, why, whylen) == 0);
}

/* Send stream idx's HELLO (dialler, with the token) or HELLO_OK
 * (accepting side); epoch 0 on a first connection. 1 if it went out. */
int scomm_kv_hs_send_hello(scomm_kv_ep_t *ep, int fd, int type, int idx,
                           uint32_t epoch, uint64_t deadline)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE], pl[SCOMM_KV_HELLO_SIZE];
    scomm_kv_hdr_t h;

    memset(&h, 0, sizeof(h));
    h.magic   = SCOMM_KV_MAGIC;
    h.version = SCOMM_KV_VERSION;
    h.type    = (uint16_t)type;
    h.len     = SCOMM_KV_HELLO_SIZE;
    h.aux     = (type == SCOMM_KV_T_HELLO_OK) ? (uint32_t)ep->cma_read_ok
                                               : 0;
    scomm_kv_hdr_encode(&h, hb);
    kv_fill_hello(ep, (type == SCOMM_KV_T_HELLO) ? ep->token : "", ep->session,
                  idx, ep->nstreams, epoch, pl);
    return (scomm_kv_hs_io(fd, hb, sizeof(hb), 1, deadline) == 0) &&
           (scomm_kv_hs_io(fd, pl, sizeof(pl), 1, deadline) == 0);
}

/* Answer a handshake with HELLO_NO and a reason, then close it. aux 1
 * tells a re-dialler the refusal is transient (try again). */
void scomm_kv_hs_refuse(int fd, const char *why, int transient,
                        uint64_t deadline)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE];
    scomm_kv_hdr_t h;

    memset(&h, 0, sizeof(h));
    h.magic   = SCOMM_KV_MAGIC;
    h.version = SCOMM_KV_VERSION;
    h.type    = SCOMM_KV_T_HELLO_NO;
    h.len     = strlen(why) + 1;
    h.aux     = (uint32_t)(transient != 0);
    scomm_kv_hdr_encode(&h, hb);
    if (scomm_kv_hs_io(fd, hb, sizeof(hb), 1, deadline) == 0) {
        (void)scomm_kv_hs_io(fd, (void *)why, h.len, 1, deadline);
    }
    close(fd);
}

/* ------------------------------------------------------------------------ */
/* Stream lifecycle: reconnection                                            */
/* ------------------------------------------------------------------------ */

/*
 * A lost stream (EOF, reset, error, no progress) comes back when the peer
 * process is still there. The side that dialled re-dials; the accepting
 * side takes re-dials on a listening socket of its own, opened on the
 * address the streams came in on when the endpoint is accepted, whose port
 * travels in HELLO_OK. So re-dials do not depend on the user's listener,
 * which may be closed (scomm_kv_connect_comm closes it at once), and they
 * never mix with new endpoints. One keeper thread per endpoint does it:
 *
 *    alive --stream_dead--> pending --keeper: re-dial ok--> alive
 *                               |
 *                               +--window over / refused / peer exited-->
 *                                  gone (the last: SCOMM_ERR_PEER_LOST)
 *
 * Invariants:
 *  1. Only the keeper starts or joins a stream's threads after kv_ep_start,
 *     and it reuses a stream slot only once both old threads have ended
 *     and been joined; scomm_kv_ep_close joins the keeper first.
 *  2. A re-dial carries the token (compared in constant time), the
 *     session (random, 64 bits), the stream index and an epoch larger than
 *     any the stream had: a stray or a replayed HELLO_OK-ed re-dial is
 *     refused with HELLO_NO and touches nothing. A valid re-dial for a
 *     stream that still looks alive here replaces it (the dialler saw it
 *     break first).
 *  3. Replies queued for the old connection are dropped with it: the
 *     sender re-sends every chunk unanswered on it and re-begins every
 *     transfer whose BEGIN went out on it, and the receiver answers a
 *     duplicate chunk or BEGIN as it did the first time, counting nothing
 *     twice. Receiver transfer state belongs to the endpoint, not to the
 *     stream, so it survives.
 *  4. The dialler re-dials for redial_ms from the loss with backoff; a
 *     refused connection (the peer's socket is gone: it exited or closed
 *     the endpoint) or a HELLO_NO ends it at once. The accepting side
 *     waits redial_ms + KV_REDIAL_SLACK, or less when it sees the peer
 *     process exit (pidfd, same host only).
 */

int scomm_kv_sock_set_port(struct sockaddr_storage *ss, int port)
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

/* Accepting side: open the endpoint's re-dial socket on the address its
 * first stream came in on. Without one the endpoint takes no re-dials. */
void scomm_kv_redial_listen(scomm_kv_ep_t *ep)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char err[256];

    ep->lfd = -1;
    if ((getsockname(ep->st[0].fd, (struct sockaddr *)&ss, &len) != 0) ||
        (scomm_kv_sock_set_port(&ss, 0) != 0)) {
        snprintf(err, sizeof(err), "getsockname: %s", strerror(errno));
    } else {
        ep->lfd = scomm_sock_listen(&ss, len, err, sizeof(err));
    }
    if (ep->lfd < 0) {
        scomm_info(SCOMM_SUB_KV, "kv: no re-dial socket (%s): lost streams "
                   "stay lost", err);
        ep->redial_ms = 0;
        return;
    }
    scomm_set_nonblock(ep->lfd);
    ep->rport = scomm_sock_local_port(ep->lfd);
}

/* 1 if the peer process is known to have exited. */
static int kv_peer_exited(const scomm_kv_ep_t *ep)
{
    struct pollfd p;

    if (ep->pidfd < 0) {
        return 0;
    }
    p.fd      = ep->pidfd;
    p.events  = POLLIN;
    p.revents = 0;
    return poll(&p, 1, 0) > 0;
}

/* Stop waiting for st (lock held). */
void scomm_kv_stream_give_up(scomm_kv_ep_t *ep, kv_stream_t *st,
                             const char *how)
{
    st->pending = 0;
    st->gone    = 1;
    if (ep->alive > 0) {
        scomm_warn(SCOMM_SUB_KV, "kv stream %d not re-established: %s; %d "
                   "left", st->idx, how, ep->alive);
    }
    kv_lost_check(ep, st, how);
}

/* Join the ended threads of stream st (lock held, dropped inside). */
static void kv_stream_reap(scomm_kv_ep_t *ep, kv_stream_t *st)
{
    int tx = st->tx_started, rx = st->rx_started;

    if (st->alive || (st->running > 0) || (!tx && !rx)) {
        return;
    }
    st->tx_started = 0;
    st->rx_started = 0;
    pthread_mutex_unlock(&ep->lock);
    if (tx) {
        pthread_join(st->tx, NULL);
    }
    if (rx) {
        pthread_join(st->rx, NULL);
    }
    pthread_mutex_lock(&ep->lock);
}

/* Put connection fd (handshake done) under stream st, whose old threads
 * are joined, and start its threads (lock held, dropped inside). */
static void kv_stream_revive(scomm_kv_ep_t *ep, kv_stream_t *st, int fd,
                             uint32_t epoch)
{
    scomm_set_nonblock(fd);
    scomm_sock_tune(fd, 0);
    if (st->fd >= 0) {
        close(st->fd);
    }
    st->fd       = fd;
    st->ctl_n    = 0;       /* replies meant for the old connection */
    st->ctl_head = 0;
    st->inf_n    = 0;
    st->inf_head = 0;
    st->why[0]   = '\0';
    st->why_tx[0] = '\0';
    st->last_rx  = st->last_tx = scomm_now_ns();
    st->epoch    = epoch;
    st->pending  = 0;
    st->running  = 2;
    __atomic_store_n(&st->alive, 1, __ATOMIC_RELEASE);
    ep->alive++;
    ep->stats.streams = ep->alive;
    scomm_tm_add(NULL, SCOMM_TM_KV_RECONNECTS, 1);
    scomm_info(SCOMM_SUB_KV, "kv stream %d re-established (connection %u) "
               "after %.0f ms", st->idx, epoch,
               (double)(scomm_now_ns() - st->down_since) / 1e6);
    if (pthread_create(&st->rx, NULL, scomm_kv_rx_main, st) != 0) {
        st->running = 0;
    } else {
        st->rx_started = 1;
        if (pthread_create(&st->tx, NULL, scomm_kv_tx_main, st) != 0) {
            st->running = 1;
        } else {
            st->tx_started = 1;
        }
    }
    pthread_cond_broadcast(&ep->tx_cond);
    if (!st->tx_started) {
        pthread_mutex_unlock(&ep->lock);
        scomm_kv_stream_dead(st, "pthread_create failed");
        pthread_mutex_lock(&ep->lock);
        if (st->pending) {
            scomm_kv_stream_give_up(ep, st, "no thread for it");
        }
    }
}

/* Dialler: one re-dial of stream idx. 0: fd is handshaken; 1: try again
 * later; -1: the peer refused, stop. */
static int kv_redial(scomm_kv_ep_t *ep, int idx, uint32_t epoch,
                     uint64_t deadline, int *fd_p, char *why, size_t whylen)
{
    uint8_t hb[SCOMM_KV_HDR_SIZE], pl[SCOMM_KV_HELLO_SIZE];
    char text[SCOMM_KV_ERRTEXT_MAX + 1];
    scomm_kv_hello_t peer;
    scomm_kv_hdr_t h;
    int fd, rc, e;

    rc = scomm_sock_connect(&ep->peer_ss, ep->peer_sslen, deadline, 0, &fd);
    if (rc != SCOMM_SOCK_OK) {
        e = errno;
        if (rc == SCOMM_SOCK_TIMEOUT) {
            snprintf(why, whylen, "re-dial timed out");
            return 1;
        }
        snprintf(why, whylen, "re-dial: %s", strerror(e));
        /* Nothing listens there any more: the process or the endpoint is
         * gone, and waiting does not bring it back. */
        return (e == ECONNREFUSED) ? -1 : 1;
    }
    if (!scomm_kv_hs_send_hello(ep, fd, SCOMM_KV_T_HELLO, idx, epoch,
                                deadline) ||
        (scomm_kv_hs_io(fd, hb, sizeof(hb), 0, deadline) != 0)) {
        snprintf(why, whylen, "re-dial handshake: no answer");
        close(fd);
        return 1;
    }
    scomm_kv_hdr_decode(hb, &h);
    if (scomm_kv_hdr_check(&h, 0, why, whylen) != 0) {
        close(fd);
        return -1;
    }
    if (h.type == SCOMM_KV_T_HELLO_NO) {
        memset(text, 0, sizeof(text));
        (void)scomm_kv_hs_io(fd, text, h.len, 0, deadline);
        snprintf(why, whylen, "re-dial refused: %.160s", text);
        close(fd);
        return (h.aux & 1u) ? 1 : -1;
    }
    if ((h.type != SCOMM_KV_T_HELLO_OK) ||
        (scomm_kv_hs_io(fd, pl, sizeof(pl), 0, deadline) != 0) ||
        (scomm_kv_hello_decode(pl, sizeof(pl), &peer, why, whylen) != 0) ||
        (peer.session != ep->session) || (peer.stream != (uint32_t)idx) ||
        (peer.epoch != epoch)) {
        snprintf(why, whylen, "re-dial: bad handshake reply");
        close(fd);
        return -1;
    }
    *fd_p = fd;
    return 0;
}

/* Dialler's turn of the keeper (lock held, dropped inside). */
static void kv_keeper_dial(scomm_kv_ep_t *ep)
{
    char why[SCOMM_KV_ERRTEXT_MAX];
    kv_stream_t *st = NULL;
    struct timespec ts;
    uint64_t now = scomm_now_ns(), wake = now + 100000000ull, deadline, end;
    uint32_t epoch;
    int i, rc, fd = -1;

    for (i = 0; (i < ep->nstreams) && !ep->hold; i++) {
        kv_stream_t *s = &ep->st[i];

        if (!s->pending || s->tx_started || s->rx_started) {
            continue;
        }
        if (s->next_try <= now) {
            st = s;
            break;
        }
        wake = SCOMM_MIN(wake, s->next_try);
    }
    if (st == NULL) {
        scomm_kv_abs_deadline(&ts, wake);
        pthread_cond_timedwait(&ep->keep_cond, &ep->lock, &ts);
        return;
    }
    /* Every attempt gets a new epoch: one the peer took but we gave up on
     * (no answer in time) must not make the next look like a replay. */
    epoch = ++st->epoch;
    end = st->down_since + (uint64_t)ep->redial_ms * 1000000ull;
    deadline = SCOMM_MIN(end, now + (uint64_t)KV_REDIAL_TRY_MS * 1000000ull);
    pthread_mutex_unlock(&ep->lock);
    rc = kv_redial(ep, st->idx, epoch, deadline, &fd, why, sizeof(why));
    pthread_mutex_lock(&ep->lock);
    if (rc == 0) {
        if (ep->closing || (ep->fault != SCOMM_OK) || !st->pending) {
            close(fd);
            return;
        }
        kv_stream_revive(ep, st, fd, epoch);
    } else if (rc < 0) {
        if (st->pending) {
            scomm_kv_stream_give_up(ep, st, why);
        }
    } else {
        st->backoff_ms = (st->backoff_ms == 0)
                             ? 25 : SCOMM_MIN(2 * st->backoff_ms,
                                              (uint32_t)KV_BACKOFF_MAX_MS);
        st->next_try = scomm_now_ns() + (uint64_t)st->backoff_ms * 1000000ull;
        scomm_debug(SCOMM_SUB_KV, "kv stream %d: %s; again in %u ms",
                    st->idx, why, st->backoff_ms);
    }
}

/* Accepting side: handshake of one connection on the re-dial socket (lock
 * held, dropped inside). */
static void kv_take_redial(scomm_kv_ep_t *ep, int fd)
{
    char why[160];
    const char *no = NULL;
    int again = 0;
    scomm_kv_hello_t hello;
    kv_stream_t *st;
    struct timespec ts;
    uint64_t deadline = scomm_deadline_ms(KV_REDIAL_TRY_MS);
    int ok;

    pthread_mutex_unlock(&ep->lock);
    ok = scomm_kv_hs_read_hello(fd, deadline, &hello, why, sizeof(why));
    if (!ok) {
        scomm_info(SCOMM_SUB_KV, "kv: dropped a bad re-dial%s%s",
                   why[0] ? ": " : "", why);
        close(fd);
        pthread_mutex_lock(&ep->lock);
        return;
    }
    if (!scomm_secret_equal(hello.token, ep->token)) {
        no = "wrong token";
    } else if (!(hello.flags & SCOMM_KV_HELLO_RESUME)) {
        no = "not a re-dial";
    } else if (!scomm_ct_equal(&hello.session, &ep->session,
                               sizeof(ep->session))) {
        no = "unknown session";
    } else if (hello.nstreams != (uint32_t)ep->nstreams) {
        no = "stream count differs";
    }
    pthread_mutex_lock(&ep->lock);
    st = (no == NULL) ? &ep->st[hello.stream] : NULL;
    if (st != NULL) {
        if (ep->closing || (ep->fault != SCOMM_OK)) {
            no = "endpoint closed";
        } else if (st->gone) {
            no = "stream given up";
        } else if (hello.epoch <= st->epoch) {
            no = "stale re-dial";  /* a replay, or an attempt overtaken */
            again = 1;
        }
    }
    if ((no == NULL) && st->alive) {
        /* The dialler saw it break first; the new connection wins. */
        pthread_mutex_unlock(&ep->lock);
        scomm_kv_stream_dead(st, "replaced by a re-dial");
        pthread_mutex_lock(&ep->lock);
    }
    while ((no == NULL) && (st->running > 0)) {
        if (scomm_now_ns() >= deadline) {
            no = "stream busy";
            again = 1;
            break;
        }
        scomm_kv_abs_deadline(&ts, deadline);
        pthread_cond_timedwait(&ep->keep_cond, &ep->lock, &ts);
    }
    if (no == NULL) {
        kv_stream_reap(ep, st);
        if (!st->pending || (hello.epoch <= st->epoch) || ep->closing) {
            no = "stream changed";
            again = 1;
        }
    }
    if (no != NULL) {
        pthread_mutex_unlock(&ep->lock);
        scomm_warn(SCOMM_SUB_KV, "kv: refused a re-dial (stream %u, epoch "
                   "%u): %s", hello.stream, hello.epoch, no);
        scomm_kv_hs_refuse(fd, no, again, deadline);
        pthread_mutex_lock(&ep->lock);
        return;
    }
    st->epoch = hello.epoch;
    pthread_mutex_unlock(&ep->lock);
    ok = scomm_kv_hs_send_hello(ep, fd, SCOMM_KV_T_HELLO_OK, st->idx,
                                hello.epoch, deadline);
    pthread_mutex_lock(&ep->lock);
    if (!ok || !st->pending || ep->closing) {
        close(fd);     /* still pending: the dialler tries again */
        return;
    }
    kv_stream_revive(ep, st, fd, hello.epoch);
}

/* Accepting side's turn of the keeper (lock held, dropped inside). */
static void kv_keeper_accept(scomm_kv_ep_t *ep)
{
    struct pollfd p;
    int fd, hold = ep->hold;

    pthread_mutex_unlock(&ep->lock);
    if (hold) {
        usleep(20000);
        pthread_mutex_lock(&ep->lock);
        return;
    }
    p.fd      = ep->lfd;
    p.events  = POLLIN;
    p.revents = 0;
    fd = -1;
    if (poll(&p, 1, 100) > 0) {
        fd = accept4(ep->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    }
    pthread_mutex_lock(&ep->lock);
    if (fd >= 0) {
        kv_take_redial(ep, fd);
    }
}

void *scomm_kv_keeper_main(void *arg)
{
    scomm_kv_ep_t *ep = arg;
    uint64_t window = (uint64_t)(ep->redial_ms +
                                 (ep->dialer ? 0 : KV_REDIAL_SLACK)) *
                      1000000ull;
    char how[96];
    uint64_t now;
    int i;

    snprintf(how, sizeof(how), "not re-established within %lld ms",
             (long long)(window / 1000000ull));
    pthread_mutex_lock(&ep->lock);
    while (!ep->closing && (ep->fault == SCOMM_OK)) {
        for (i = 0; i < ep->nstreams; i++) {
            kv_stream_t *st = &ep->st[i];

            /* Read the clock here: kv_stream_reap drops the lock, and a
             * stream lost meanwhile has a down_since later than an older
             * "now". */
            now = scomm_now_ns();
            if (st->pending && (now >= st->down_since) &&
                (now - st->down_since >= window)) {
                scomm_kv_stream_give_up(ep, st, how);
            } else if (st->pending && ep->peer_bye) {
                scomm_kv_stream_give_up(ep, st, "the peer closed the endpoint");
            } else if (st->pending && kv_peer_exited(ep)) {
                scomm_kv_stream_give_up(ep, st, "the peer process exited");
            }
            if (ep->fault != SCOMM_OK) {
                break;
            }
            kv_stream_reap(ep, st);
        }
        if (ep->closing || (ep->fault != SCOMM_OK)) {
            break;
        }
        if (ep->dialer) {
            kv_keeper_dial(ep);
        } else {
            kv_keeper_accept(ep);
        }
    }
    pthread_mutex_unlock(&ep->lock);
    return NULL;
}

scomm_status_t scomm_kv_listen(const char *host, int32_t port,
                               const scomm_kv_opts_t *opts,
                               scomm_kv_listener_t **lst_p)
{
    struct sockaddr_storage ss;
    socklen_t len;
    scomm_kv_listener_t *l;
    kv_cfg_t c;
    char err[256];
    scomm_status_t status;
    int fd;

    if ((host == NULL) || (port < 0) || (port > 65535) || (lst_p == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_listen: NULL host or "
                             "lst_p, or port %d outside 0..65535", port);
    }
    status = scomm_kv_cfg_resolve(opts, &c);
    if (status != SCOMM_OK) {
        return status;
    }
    if (scomm_sock_resolve(host, port, &ss, &len, err, sizeof(err)) != 0) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_listen: %s", err);
    }
    fd = scomm_sock_listen(&ss, len, err, sizeof(err));
    if (fd < 0) {
        return scomm_kv_fail(SCOMM_ERR_SYSTEM, "kv_listen on %s:%d: %s", host,
                             port, err);
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_listen: out of memory");
    }
    l->fd   = fd;
    l->port = scomm_sock_local_port(fd);
    /* Keep the resolved values (the preset name need not outlive us).
     * Nothing is copied from *opts as a whole: a caller built before a
     * field was appended has a shorter struct (field_mask rule). */
    l->opts.field_mask = SCOMM_KV_FIELD_CHUNK_SIZE | SCOMM_KV_FIELD_STREAMS |
        SCOMM_KV_FIELD_PREFETCH_DEPTH | SCOMM_KV_FIELD_ZERO_COPY |
        SCOMM_KV_FIELD_COMPRESSION | SCOMM_KV_FIELD_COMPRESS_LEVEL |
        SCOMM_KV_FIELD_WIRE_DTYPE | SCOMM_KV_FIELD_TIMEOUT |
        SCOMM_KV_FIELD_RECONNECT_MS;
    l->opts.reconnect_ms = c.reconnect_ms;
    l->opts.chunk_size = c.chunk_size;
    l->opts.streams = c.streams;
    l->opts.prefetch_depth = c.depth;
    l->opts.zero_copy = c.zero_copy;
    l->opts.compression = c.compression;
    l->opts.compression_level = c.level;
    l->opts.wire_dtype = c.wire_dtype;
    l->opts.timeout_ms = c.timeout_ms;
    snprintf(l->token, sizeof(l->token), "%s", c.token);
    l->timeout_ms = c.timeout_ms;
    *lst_p = l;
    return SCOMM_OK;
}

int32_t scomm_kv_listener_port(const scomm_kv_listener_t *lst)
{
    return (lst == NULL) ? -1 : lst->port;
}

void scomm_kv_listener_close(scomm_kv_listener_t *lst)
{
    if (lst != NULL) {
        close(lst->fd);
        free(lst);
    }
}

scomm_status_t scomm_kv_accept(scomm_kv_listener_t *lst, int64_t timeout_ms,
                               scomm_kv_ep_t **ep_p)
{
    int fds[SCOMM_KV_MAX_STREAMS];
    char why[160];
    scomm_kv_hello_t hello, first;
    scomm_kv_ep_t *ep;
    kv_cfg_t c;
    uint64_t deadline, hs_deadline, session = 0;
    struct pollfd pfd;
    int have = 0, want = 0, fd, i, ok;
    scomm_status_t status;

    if ((lst == NULL) || (ep_p == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_accept: NULL argument");
    }
    deadline = scomm_deadline_ms((timeout_ms > 0) ? timeout_ms
                                                  : lst->timeout_ms);
    memset(fds, -1, sizeof(fds));
    memset(&first, 0, sizeof(first));
    while ((want == 0) || (have < want)) {
        pfd.fd = lst->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (scomm_now_ns() >= deadline) {
            for (i = 0; i < SCOMM_KV_MAX_STREAMS; i++) {
                if (fds[i] >= 0) {
                    close(fds[i]);
                }
            }
            return scomm_kv_fail(SCOMM_ERR_TIMED_OUT, "kv_accept on port %d: "
                                 "timed out with %d of %d streams", lst->port,
                                 have, want);
        }
        if (poll(&pfd, 1, scomm_ms_left(deadline, KV_POLL_MS)) <= 0) {
            continue;
        }
        fd = accept4(lst->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
            continue;
        }
        hs_deadline = SCOMM_MIN(deadline, scomm_deadline_ms(5000));
        ok = scomm_kv_hs_read_hello(fd, hs_deadline, &hello, why, sizeof(why));
        if (ok && !scomm_secret_equal(hello.token, lst->token)) {
            scomm_kv_hs_refuse(fd, "wrong token", 0, hs_deadline);
            scomm_warn(SCOMM_SUB_KV, "kv_accept: refused a connection with "
                       "a wrong token");
            continue;
        }
        if (ok && (hello.flags & SCOMM_KV_HELLO_RESUME)) {
            /* Re-dials go to the endpoint's own port, never here. */
            scomm_kv_hs_refuse(fd, "re-dial sent to a listener", 0,
                               hs_deadline);
            continue;
        }
        if (!ok) {
            close(fd);
            continue;
        }
        if ((want == 0) || (hello.session != session)) {
            /* A new session replaces an incomplete one. */
            for (i = 0; i < SCOMM_KV_MAX_STREAMS; i++) {
                if (fds[i] >= 0) {
                    close(fds[i]);
                    fds[i] = -1;
                }
            }
            session = hello.session;
            want = (int)hello.nstreams;
            have = 0;
            first = hello;
        }
        if ((int)hello.nstreams != want) {
            close(fd);
            continue;
        }
        if (fds[hello.stream] >= 0) {
            close(fds[hello.stream]);
            have--;
        }
        fds[hello.stream] = fd;
        have++;
    }
    status = scomm_kv_cfg_resolve(&lst->opts, &c);
    if (status != SCOMM_OK) {
        return status;
    }
    ep = kv_ep_new(&c);
    if (ep == NULL) {
        for (i = 0; i < want; i++) {
            close(fds[i]);
        }
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_accept: out of memory");
    }
    ep->nstreams = want;
    ep->peer_pid = first.pid;
    ep->cma_read_ok = kv_cma_probe(first.pid, first.probe_addr,
                                   first.probe_val);
    for (i = 0; i < want; i++) {
        ep->st[i].fd = fds[i];
    }
    snprintf(ep->token, sizeof(ep->token), "%s", lst->token);
    ep->session = session;
    if ((c.reconnect_ms > 0) && (first.redial_ms > 0)) {
        ep->redial_ms = first.redial_ms;
        scomm_kv_redial_listen(ep);
    }
    for (i = 0; i < want; i++) {
        if (!scomm_kv_hs_send_hello(ep, fds[i], SCOMM_KV_T_HELLO_OK, i, 0,
                                    deadline)) {
            kv_ep_free(ep);
            return scomm_kv_fail(SCOMM_ERR_PEER_LOST, "kv_accept: peer went "
                                 "away during the handshake");
        }
    }
    status = kv_ep_start(ep);
    if (status != SCOMM_OK) {
        scomm_kv_ep_close(ep);
        return status;
    }
    scomm_info(SCOMM_SUB_KV, "kv endpoint accepted: %d streams, peer pid %d, "
               "same-host copy %s", want, first.pid,
               ep->cma_read_ok ? "yes" : "no");
    *ep_p = ep;
    return SCOMM_OK;
}

scomm_status_t scomm_kv_connect(const char *host, int32_t port,
                                const scomm_kv_opts_t *opts,
                                scomm_kv_ep_t **ep_p)
{
    struct sockaddr_storage ss;
    socklen_t len;
    uint8_t hb[SCOMM_KV_HDR_SIZE], pl[SCOMM_KV_HELLO_SIZE];
    char err[256], text[SCOMM_KV_ERRTEXT_MAX + 1];
    scomm_kv_hello_t peer;
    scomm_kv_hdr_t h;
    scomm_kv_ep_t *ep;
    kv_cfg_t c;
    uint64_t deadline, session;
    scomm_status_t status;
    int i, rc, fd;

    if ((host == NULL) || (port <= 0) || (port > 65535) || (ep_p == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_connect: NULL host or "
                             "ep_p, or port %d outside 1..65535", port);
    }
    status = scomm_kv_cfg_resolve(opts, &c);
    if (status != SCOMM_OK) {
        return status;
    }
    if (scomm_sock_resolve(host, port, &ss, &len, err, sizeof(err)) != 0) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_connect: %s", err);
    }
    ep = kv_ep_new(&c);
    if (ep == NULL) {
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_connect: out of memory");
    }
    deadline = scomm_deadline_ms(c.timeout_ms);
    scomm_random_bytes(&session, sizeof(session));
    ep->nstreams  = c.streams;
    ep->session   = session;
    ep->dialer    = 1;
    ep->redial_ms = c.reconnect_ms;
    snprintf(ep->token, sizeof(ep->token), "%s", c.token);
    for (i = 0; i < c.streams; i++) {
        rc = scomm_sock_connect(&ss, len, deadline, 1, &fd);
        if (rc != SCOMM_SOCK_OK) {
            status = (rc == SCOMM_SOCK_TIMEOUT) ? SCOMM_ERR_TIMED_OUT
                                                : SCOMM_ERR_SYSTEM;
            goto fail;
        }
        ep->st[i].fd = fd;
        if (!scomm_kv_hs_send_hello(ep, fd, SCOMM_KV_T_HELLO, i, 0, deadline)) {
            status = SCOMM_ERR_PEER_LOST;
            goto fail;
        }
    }
    for (i = 0; i < c.streams; i++) {
        rc = scomm_kv_hs_io(ep->st[i].fd, hb, sizeof(hb), 0, deadline);
        if (rc != 0) {
            status = (rc == SCOMM_SOCK_TIMEOUT) ? SCOMM_ERR_TIMED_OUT
                                                : SCOMM_ERR_PEER_LOST;
            goto fail;
        }
        scomm_kv_hdr_decode(hb, &h);
        if (scomm_kv_hdr_check(&h, 0, err, sizeof(err)) != 0) {
            kv_ep_free(ep);
            return scomm_kv_fail(SCOMM_ERR_PROTOCOL, "kv_connect to %s:%d: %s",
                                 host, port, err);
        }
        if (h.type == SCOMM_KV_T_HELLO_NO) {
            memset(text, 0, sizeof(text));
            (void)scomm_kv_hs_io(ep->st[i].fd, text, h.len, 0, deadline);
            kv_ep_free(ep);
            return scomm_kv_fail(SCOMM_ERR_ACCESS_DENIED, "kv_connect to "
                                 "%s:%d: refused: %s", host, port, text);
        }
        if ((h.type != SCOMM_KV_T_HELLO_OK) ||
            (h.len != SCOMM_KV_HELLO_SIZE) ||
            (scomm_kv_hs_io(ep->st[i].fd, pl, sizeof(pl), 0, deadline) != 0) ||
            (scomm_kv_hello_decode(pl, sizeof(pl), &peer, err,
                                   sizeof(err)) != 0)) {
            kv_ep_free(ep);
            return scomm_kv_fail(SCOMM_ERR_PROTOCOL, "kv_connect to %s:%d: bad "
                                 "handshake reply", host, port);
        }
        if (i == 0) {
            ep->peer_pid = peer.pid;
            ep->cma_read_ok = kv_cma_probe(peer.pid, peer.probe_addr,
                                           peer.probe_val);
            /* Re-dials go to the address this stream reached, at the port
             * the peer named (0: it takes none). */
            ep->rport = peer.port;
            ep->peer_sslen = sizeof(ep->peer_ss);
            if ((ep->rport == 0) ||
                (getpeername(ep->st[0].fd, (struct sockaddr *)&ep->peer_ss,
                             &ep->peer_sslen) != 0) ||
                (scomm_kv_sock_set_port(&ep->peer_ss, ep->rport) != 0)) {
                ep->redial_ms = 0;
            }
        }
    }
    status = kv_ep_start(ep);
    if (status != SCOMM_OK) {
        scomm_kv_ep_close(ep);
        return status;
    }
    *ep_p = ep;
    return SCOMM_OK;
fail:
    kv_ep_free(ep);
    return scomm_kv_fail(status, "kv_connect to %s:%d: %s", host, port,
                         (status == SCOMM_ERR_TIMED_OUT)
                             ? "timed out" : "connection failed");
}

scomm_status_t scomm_kv_connect_comm(scomm_comm_t *comm, int32_t peer,
                                     const scomm_kv_opts_t *opts,
                                     scomm_kv_ep_t **ep_p)
{
    scomm_kv_opts_t o;
    scomm_kv_listener_t *l = NULL;
    scomm_world_t *w;
    char msg[128], tok[33];
    scomm_status_t status;
    int me, port;

    if ((comm == NULL) || (ep_p == NULL) || (peer < 0) ||
        (peer >= scomm_size(comm)) || (peer == scomm_rank(comm))) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_connect_comm: NULL "
                             "argument or bad peer %d", peer);
    }
    w  = comm->world;
    me = scomm_rank(comm);
    memset(&o, 0, sizeof(o));
    if (opts != NULL) {
        /* Fields appended later exist only where their bit is set. */
        memcpy(&o, opts, offsetof(scomm_kv_opts_t, reconnect_ms));
        if (opts->field_mask & SCOMM_KV_FIELD_RECONNECT_MS) {
            o.reconnect_ms = opts->reconnect_ms;
        }
    }
    if (me < peer) {
        scomm_random_hex(tok, 16);
        o.field_mask |= SCOMM_KV_FIELD_TOKEN;
        o.token = tok;
        status = scomm_kv_listen(w->info[w->rank].tcp_addr, 0, &o, &l);
        if (status != SCOMM_OK) {
            return status;
        }
        memset(msg, 0, sizeof(msg));
        snprintf(msg, sizeof(msg), "%d %s", scomm_kv_listener_port(l), tok);
        status = scomm_send(msg, sizeof(msg), SCOMM_UINT8, peer,
                            SCOMM_KV_COMM_TAG, comm);
        if (status == SCOMM_OK) {
            status = scomm_kv_accept(l, 0, ep_p);
        }
        scomm_kv_listener_close(l);
        return status;
    }
    status = scomm_recv(msg, sizeof(msg), SCOMM_UINT8, peer,
                        SCOMM_KV_COMM_TAG, comm);
    if (status != SCOMM_OK) {
        return status;
    }
    msg[sizeof(msg) - 1] = '\0';
    if (sscanf(msg, "%d %32s", &port, tok) != 2) {
        return scomm_kv_fail(SCOMM_ERR_PROTOCOL, "kv_connect_comm: bad address "
                             "from rank %d", peer);
    }
    o.field_mask |= SCOMM_KV_FIELD_TOKEN;
    o.token = tok;
    return scomm_kv_connect(w->info[comm->ranks[peer]].tcp_addr, port, &o,
                            ep_p);
}

void scomm_kv_ep_close(scomm_kv_ep_t *ep)
{
    kv_sx_t *sx, *next;
    int i;

    if (ep == NULL) {
        return;
    }
    pthread_mutex_lock(&ep->lock);
    __atomic_store_n(&ep->closing, 1, __ATOMIC_RELEASE);
    scomm_kv_ep_fault(ep, SCOMM_ERR_ABORTED, "kv endpoint closed");
    pthread_mutex_unlock(&ep->lock);
    /* The keeper first: after it no thread is started or joined by
     * anyone else, and nothing takes re-dials. */
    if (ep->keeper_started) {
        pthread_join(ep->keeper, NULL);
    }
    for (i = 0; i < ep->nstreams; i++) {
        if (ep->st[i].tx_started) {
            pthread_join(ep->st[i].tx, NULL);
        }
        if (ep->st[i].fd >= 0) {
            shutdown(ep->st[i].fd, SHUT_RDWR);
        }
        if (ep->st[i].rx_started) {
            pthread_join(ep->st[i].rx, NULL);
        }
    }
    for (i = 0; i < ep->nstreams; i++) {
        kv_stream_t *st = &ep->st[i];

        while (st->inf_n > 0) {
            st->inf[st->inf_head].sx->refs--;
            st->inf_head = (st->inf_head + 1) % ep->depth;
            st->inf_n--;
        }
    }
    for (sx = ep->sx_head; sx != NULL; sx = next) {
        next = sx->next;
        if (sx->user_freed) {
            scomm_kv_sx_free(sx);
        } else {
            sx->orphan = 1;
            sx->ep = NULL;
        }
    }
    kv_ep_free(ep);
}

/* ------------------------------------------------------------------------ */
/* Regions, transfers, waits                                                 */
/* ------------------------------------------------------------------------ */

scomm_status_t scomm_kv_register(scomm_kv_ep_t *ep,
                                 const scomm_kv_layout_t *layout, void *base,
                                 uint64_t bytes, int32_t *id_p)
{
    char why[256];
    uint64_t need;
    int id;

    if ((ep == NULL) || (base == NULL) || (id_p == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_register: NULL "
                             "argument");
    }
    if (scomm_kv_layout_check(layout, why, sizeof(why)) != 0) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_register: %s", why);
    }
    if (__builtin_mul_overflow((uint64_t)layout->num_layers,
                               (uint64_t)layout->num_blocks, &need) ||
        __builtin_mul_overflow(need, scomm_kv_block_bytes(layout), &need) ||
        (bytes < need)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_register: region of "
                             "%llu bytes, layout needs %llu",
                             (unsigned long long)bytes,
                             (unsigned long long)need);
    }
    pthread_mutex_lock(&ep->lock);
    for (id = 0; id < SCOMM_KV_MAX_REGIONS; id++) {
        if (!ep->regions[id].used) {
            break;
        }
    }
    if (id == SCOMM_KV_MAX_REGIONS) {
        pthread_mutex_unlock(&ep->lock);
        return scomm_kv_fail(SCOMM_ERR_NO_RESOURCE, "kv_register: %d regions "
                             "already", SCOMM_KV_MAX_REGIONS);
    }
    ep->regions[id].used  = 1;
    ep->regions[id].l     = *layout;
    ep->regions[id].base  = base;
    ep->regions[id].bytes = bytes;
    ep->regions[id].bb    = (size_t)scomm_kv_block_bytes(layout);
    pthread_cond_broadcast(&ep->done_cond); /* a BEGIN may wait for it */
    pthread_mutex_unlock(&ep->lock);
    *id_p = id;
    return SCOMM_OK;
}

scomm_status_t scomm_kv_deregister(scomm_kv_ep_t *ep, int32_t id)
{
    if ((ep == NULL) || (id < 0) || (id >= SCOMM_KV_MAX_REGIONS) ||
        !ep->regions[id].used) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_deregister: region %d "
                             "is not registered", id);
    }
    pthread_mutex_lock(&ep->lock);
    ep->regions[id].used = 0;
    pthread_mutex_unlock(&ep->lock);
    return SCOMM_OK;
}

scomm_status_t scomm_kv_submit(scomm_kv_ep_t *ep, const scomm_kv_plan_t *plan,
                               int32_t priority, scomm_kv_xfer_t **xfer_p)
{
    kv_region_t *r;
    kv_sx_t *sx, *o;
    uint64_t nsrc;
    uint32_t i;
    size_t wbb;

    if ((ep == NULL) || (plan == NULL) || (xfer_p == NULL) ||
        (plan->src_blocks == NULL) || (plan->dst_blocks == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: NULL argument");
    }
    if ((plan->src_region < 0) || (plan->src_region >= SCOMM_KV_MAX_REGIONS)
        || !ep->regions[plan->src_region].used) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: source region "
                             "%d is not registered", plan->src_region);
    }
    r = &ep->regions[plan->src_region];
    nsrc = (plan->num_tokens + (uint64_t)r->l.block_tokens - 1) /
           (uint64_t)r->l.block_tokens;
    if ((plan->num_tokens < 1) || (plan->num_src_blocks != nsrc) ||
        (nsrc > SCOMM_KV_PLAN_MAX) ||
        (plan->num_dst_blocks > SCOMM_KV_PLAN_MAX) ||
        (plan->num_layers < 1) || (plan->first_layer < 0) ||
        (plan->first_layer > r->l.num_layers - plan->num_layers)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: plan of %llu "
                             "tokens with %u source blocks (need %llu) and "
                             "layers %d+%d does not fit source region %d (%d "
                             "layers)", (unsigned long long)plan->num_tokens,
                             plan->num_src_blocks, (unsigned long long)nsrc,
                             plan->first_layer, plan->num_layers,
                             plan->src_region, r->l.num_layers);
    }
    for (i = 0; i < plan->num_src_blocks; i++) {
        if ((plan->src_blocks[i] < 0) ||
            (plan->src_blocks[i] >= r->l.num_blocks)) {
            return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: source "
                                 "block %d outside region %d (%d blocks)",
                                 plan->src_blocks[i], plan->src_region,
                                 r->l.num_blocks);
        }
    }
    sx = calloc(1, sizeof(*sx));
    if (sx == NULL) {
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_submit: out of memory");
    }
    sx->ep          = ep;
    sx->plan        = *plan;
    sx->t_submit    = scomm_now_ns();
    sx->priority    = priority;
    sx->wire_dtype  = ep->wire_dtype;
    sx->compression = ep->compression;
    sx->level       = ep->level;
    wbb = scomm_kv_wire_block_bytes(&r->l, sx->wire_dtype);
    sx->bpc = (uint32_t)SCOMM_MAX((size_t)1, ep->chunk_size /
                                  SCOMM_MAX(r->bb, wbb));
    sx->bpc = SCOMM_MIN(sx->bpc, plan->num_src_blocks);
    sx->cpl = (plan->num_src_blocks + sx->bpc - 1) / sx->bpc;
    sx->nchunks = (uint64_t)sx->cpl * (uint64_t)plan->num_layers;
    sx->tbl = malloc(4 * ((size_t)plan->num_src_blocks +
                          plan->num_dst_blocks + 1));
    sx->acked_map = calloc(sx->nchunks, 1);
    sx->nacks = calloc(sx->nchunks, 1);
    sx->resend = malloc(sizeof(uint32_t) * (sx->nchunks + 1));
    if ((sx->tbl == NULL) || (sx->acked_map == NULL) || (sx->nacks == NULL)
        || (sx->resend == NULL) || (sx->nchunks > UINT32_MAX)) {
        scomm_kv_sx_free(sx);
        return scomm_kv_fail(SCOMM_ERR_NO_MEMORY, "kv_submit: out of memory");
    }
    memcpy(sx->tbl, plan->src_blocks, 4 * (size_t)plan->num_src_blocks);
    memcpy(sx->tbl + plan->num_src_blocks, plan->dst_blocks,
           4 * (size_t)plan->num_dst_blocks);
    sx->plan.src_blocks = sx->tbl;
    sx->plan.dst_blocks = sx->tbl + plan->num_src_blocks;
    pthread_mutex_lock(&ep->lock);
    if (ep->fault != SCOMM_OK) {
        scomm_status_t st = ep->fault;

        pthread_mutex_unlock(&ep->lock);
        scomm_kv_sx_free(sx);
        return scomm_kv_fail(st, "kv_submit: %s", ep->fault_msg);
    }
    for (o = ep->sx_head; o != NULL; o = o->next) {
        if ((o->plan.xfer_id == plan->xfer_id) && (o->state != SX_DONE) &&
            (o->state != SX_FAILED)) {
            pthread_mutex_unlock(&ep->lock);
            scomm_kv_sx_free(sx);
            return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_submit: transfer "
                                 "id %llu is in use",
                                 (unsigned long long)plan->xfer_id);
        }
    }
    sx->order = ep->sx_order++;
    sx->state = SX_BEGIN_WAIT;
    sx->next  = ep->sx_head;
    ep->sx_head = sx;
    pthread_cond_broadcast(&ep->tx_cond);
    pthread_mutex_unlock(&ep->lock);
    *xfer_p = sx;
    return SCOMM_OK;
}

void scomm_kv_abs_deadline(struct timespec *ts, uint64_t deadline)
{
    uint64_t left_ns, now = scomm_now_ns();

    left_ns = (deadline > now) ? deadline - now : 0;
    if (left_ns > 100000000ull) {
        left_ns = 100000000ull; /* wake at least every 100 ms */
    }
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec  += (time_t)(left_ns / 1000000000ull);
    ts->tv_nsec += (long)(left_ns % 1000000000ull);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

scomm_status_t scomm_kv_xfer_wait(scomm_kv_xfer_t *sx, int64_t timeout_ms)
{
    scomm_kv_ep_t *ep;
    struct timespec ts;
    uint64_t deadline;
    scomm_status_t st;

    if (sx == NULL) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_xfer_wait: NULL xfer");
    }
    if (sx->orphan) {
        return (sx->state == SX_DONE)
                   ? SCOMM_OK : scomm_kv_fail(sx->status, "%s", sx->msg);
    }
    ep = sx->ep;
    deadline = scomm_deadline_ms((timeout_ms > 0) ? timeout_ms
                                                  : ep->timeout_ms);
    pthread_mutex_lock(&ep->lock);
    while ((sx->state != SX_DONE) && (sx->state != SX_FAILED)) {
        if (scomm_now_ns() >= deadline) {
            pthread_mutex_unlock(&ep->lock);
            return scomm_kv_fail(SCOMM_ERR_TIMED_OUT, "kv transfer %llu: timed "
                                 "out with %llu of %llu chunks acknowledged",
                                 (unsigned long long)sx->plan.xfer_id,
                                 (unsigned long long)sx->acked,
                                 (unsigned long long)sx->nchunks);
        }
        scomm_kv_abs_deadline(&ts, deadline);
        pthread_cond_timedwait(&ep->done_cond, &ep->lock, &ts);
    }
    st = sx->status;
    pthread_mutex_unlock(&ep->lock);
    if (st != SCOMM_OK) {
        return scomm_kv_fail(st, "%s", sx->msg);
    }
    return SCOMM_OK;
}

scomm_status_t scomm_kv_xfer_test(scomm_kv_xfer_t *sx, int32_t *done)
{
    scomm_kv_ep_t *ep;
    scomm_status_t st;
    int d;

    if ((sx == NULL) || (done == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_xfer_test: NULL "
                             "argument");
    }
    if (sx->orphan) {
        *done = 1;
        return sx->status;
    }
    ep = sx->ep;
    pthread_mutex_lock(&ep->lock);
    d  = (sx->state == SX_DONE) || (sx->state == SX_FAILED);
    st = d ? sx->status : SCOMM_INPROGRESS;
    pthread_mutex_unlock(&ep->lock);
    *done = d;
    return (st == SCOMM_INPROGRESS) ? SCOMM_OK : st;
}

void scomm_kv_xfer_free(scomm_kv_xfer_t *sx)
{
    scomm_kv_ep_t *ep;

    if (sx == NULL) {
        return;
    }
    if (sx->orphan) {
        scomm_kv_sx_free(sx);
        return;
    }
    ep = sx->ep;
    pthread_mutex_lock(&ep->lock);
    scomm_kv_sx_fail(sx, SCOMM_ERR_ABORTED, "kv transfer cancelled");
    sx->user_freed = 1;
    sx->refs++;
    scomm_kv_sx_unref(ep, sx);
    pthread_mutex_unlock(&ep->lock);
}

/* Wait on the receiver until pred holds for the transfer. */
static scomm_status_t kv_rx_wait(scomm_kv_ep_t *ep, uint64_t id, int32_t layer,
                                 int64_t timeout_ms, int release)
{
    struct timespec ts;
    uint64_t deadline;
    kv_rx_t *rx, **pp;
    scomm_status_t st;
    char msg[SCOMM_KV_ERRTEXT_MAX];
    int li;

    if (ep == NULL) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv wait: NULL endpoint");
    }
    deadline = scomm_deadline_ms((timeout_ms > 0) ? timeout_ms
                                                  : ep->timeout_ms);
    pthread_mutex_lock(&ep->lock);
    for (;;) {
        rx = scomm_kv_rx_find(ep, id);
        if ((rx != NULL) && (rx->status != SCOMM_OK)) {
            st = rx->status;
            snprintf(msg, sizeof(msg), "%s", rx->msg);
            if (release) {
                for (pp = &ep->rx_head; *pp != rx; pp = &(*pp)->next) {
                }
                *pp = rx->next;
                scomm_kv_rx_free(rx);
            }
            pthread_mutex_unlock(&ep->lock);
            return scomm_kv_fail(st, "%s", msg);
        }
        if (rx != NULL) {
            if (!release) {
                li = layer - rx->b.first_layer;
                if ((li < 0) || (li >= rx->b.num_layers)) {
                    pthread_mutex_unlock(&ep->lock);
                    return scomm_kv_fail(SCOMM_ERR_INVALID_ARG,
                                         "kv_wait_layer: layer %d not in "
                                         "transfer %llu (%d+%d)", layer,
                                         (unsigned long long)id,
                                         rx->b.first_layer, rx->b.num_layers);
                }
                if (rx->layer_left[li] == 0) {
                    pthread_mutex_unlock(&ep->lock);
                    return SCOMM_OK;
                }
            } else if ((rx->ndone == rx->b.nchunks) && (rx->refs == 0)) {
                for (pp = &ep->rx_head; *pp != rx; pp = &(*pp)->next) {
                }
                *pp = rx->next;
                scomm_kv_rx_free(rx);
                pthread_mutex_unlock(&ep->lock);
                return SCOMM_OK;
            }
        }
        if (ep->fault != SCOMM_OK) {
            st = ep->fault;
            snprintf(msg, sizeof(msg), "%s", ep->fault_msg);
            pthread_mutex_unlock(&ep->lock);
            return scomm_kv_fail(st, "%s", msg);
        }
        if (scomm_now_ns() >= deadline) {
            pthread_mutex_unlock(&ep->lock);
            return scomm_kv_fail(SCOMM_ERR_TIMED_OUT, "kv transfer %llu: timed "
                                 "out waiting for %s%d", (unsigned long long)id,
                                 release ? "all layers" : "layer ",
                                 release ? 0 : layer);
        }
        scomm_kv_abs_deadline(&ts, deadline);
        pthread_cond_timedwait(&ep->done_cond, &ep->lock, &ts);
    }
}

scomm_status_t scomm_kv_wait_layer(scomm_kv_ep_t *ep, uint64_t xfer_id,
                                   int32_t layer, int64_t timeout_ms)
{
    return kv_rx_wait(ep, xfer_id, layer, timeout_ms, 0);
}

scomm_status_t scomm_kv_wait_xfer(scomm_kv_ep_t *ep, uint64_t xfer_id,
                                  int64_t timeout_ms)
{
    return kv_rx_wait(ep, xfer_id, 0, timeout_ms, 1);
}

scomm_status_t scomm_kv_ep_stats(scomm_kv_ep_t *ep, scomm_kv_stats_t *out)
{
    if ((ep == NULL) || (out == NULL)) {
        return scomm_kv_fail(SCOMM_ERR_INVALID_ARG, "kv_ep_stats: NULL "
                             "argument");
    }
    pthread_mutex_lock(&ep->lock);
    *out = ep->stats;
    pthread_mutex_unlock(&ep->lock);
    return SCOMM_OK;
}

/* ------------------------------------------------------------------------ */
/* Test hooks                                                                */
/* ------------------------------------------------------------------------ */

void scomm_kv_debug_corrupt(scomm_kv_ep_t *ep, int n)
{
    atomic_store(&ep->corrupt_n, n);
}

void scomm_kv_debug_break_stream(scomm_kv_ep_t *ep, int idx)
{
    if ((idx < 0) || (idx >= ep->nstreams)) {
        return;
    }
    /* Under the lock: the keeper may be putting a new socket in place. */
    pthread_mutex_lock(&ep->lock);
    if (ep->st[idx].alive && (ep->st[idx].fd >= 0)) {
        shutdown(ep->st[idx].fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&ep->lock);
}

void scomm_kv_debug_hold_reconnect(scomm_kv_ep_t *ep, int on)
{
    pthread_mutex_lock(&ep->lock);
    ep->hold = on;
    pthread_cond_broadcast(&ep->keep_cond);
    pthread_mutex_unlock(&ep->lock);
}

int scomm_kv_debug_redial_port(scomm_kv_ep_t *ep, uint64_t *session)
{
    if (session != NULL) {
        *session = ep->session;
    }
    return (ep->redial_ms > 0) ? ep->rport : 0;
}

void scomm_kv_debug_no_cma(scomm_kv_ep_t *ep, int on)
{
    pthread_mutex_lock(&ep->lock);
    ep->no_cma = on;
    pthread_mutex_unlock(&ep->lock);
}
