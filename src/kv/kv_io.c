/*
 * kv_io.c - the KV streams' socket I/O: a whole iovec moved on a
 * non-blocking socket with stall detection (scomm_kv_iov_io), a frame
 * written as header and payload in one writev (scomm_kv_send_hdr),
 * blocking-with-deadline I/O for the handshakes that run before a stream's
 * threads do (scomm_kv_hs_io), and the staging-buffer and clock helpers
 * the sender and the receiver share.
 *
 * Design notes (invariants):
 *  1. Every socket wait is a poll of at most KV_POLL_MS; a direction that
 *     moves no byte for KV_STALL_MS fails the I/O. An idle healthy stream
 *     never stalls: its TX thread sends a heartbeat after KV_HB_MS idle.
 *  2. Each direction writes its error text to its own thread's buffer
 *     (why_tx for writes, why for reads): the two threads of a stream never
 *     share one.
 *  3. Closing never cuts a frame short: an I/O ends early only when its
 *     stream was dropped (st->alive cleared), on an error, EOF or a stall.
 *  4. A staging buffer only grows (scomm_kv_ensure_buf, _f).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kv_int.h"
#include "core/sock.h"

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
