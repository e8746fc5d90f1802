/*
 * kv_int.h - private to src/kv: the endpoint, stream and transfer
 * structures the KV channel's files share, their constants, and the
 * functions one file calls in another. The wire format and conversions are
 * in kv.h, the public API in include/scomm.h, the protocol in docs/kv.md.
 *
 * One job per file:
 *   kv_opts.c    options: defaults, registry, preset, scomm_kv_opts_t
 *   kv_params.c  the KV knobs' rows in the configuration registry
 *   kv_io.c      socket I/O with stall detection, handshake I/O, staging
 *   kv_send.c    the sender: reply queue, chunk scheduler, TX thread, the
 *                replies that advance our transfers
 *   kv_recv.c    the receiver: BEGIN, the chunk store path, RX thread
 *   kv_conn.c    endpoints set up and torn down: listen, accept, connect,
 *                handshake, threads, close
 *   kv_redial.c  a stream's loss and its re-dial (the keeper thread)
 *   kv_codec.c   lz4 and zstd, each only where the build found it
 *   kv_xfer.c    regions, submit, waits, statistics, test hooks
 *   kv_dev.c     device regions: staging through pinned host memory,
 *                layer waits on a caller's stream
 *   kv_ofi.c     the RMA data plane over libfabric (transport ofi)
 *
 * Threads: each stream (one TCP socket) has a TX thread, the only writer of
 * its socket, and an RX thread, the only reader; each endpoint has a
 * keeper thread while reconnection is on. One mutex per endpoint (lock)
 * guards everything below that is not marked otherwise; tx_cond wakes TX
 * threads (work), done_cond waiters (completion), keep_cond the keeper.
 *
 * Design notes (invariants):
 *  1. An RX thread never writes a socket: replies (ACK, NACK, BEGIN_OK...)
 *     are queued for the stream's TX thread. So two endpoints sending to
 *     each other cannot deadlock on full socket buffers.
 *  2. Every socket wait is a poll of at most KV_POLL_MS; a stream that
 *     moves no byte in either direction for KV_STALL_MS (heartbeats are
 *     sent after KV_HB_MS idle) is dropped. A dropped stream's unanswered
 *     chunks go back to their transfers' re-send queues and move on another
 *     stream; when the last stream is gone and none can come back the
 *     endpoint fails with SCOMM_ERR_PEER_LOST and every waiter returns it.
 *  3. The sender keeps no copy of a chunk: a re-send packs it again from
 *     the registered source region. Staging memory is per stream: two
 *     buffers of one chunk on each side, only when the chunk is converted
 *     or compressed (or its blocks need regrouping on the receiver).
 *  4. A sender transfer is referenced by each in-flight chunk, by a BEGIN
 *     being written and by its user handle; it is freed when all are gone
 *     (scomm_kv_sx_unref).
 *  5. Functions marked "lock held" are called with ep->lock held; "dropped
 *     inside" ones release it for a while, so the caller re-reads what it
 *     needs after them.
 */
#ifndef SCOMM_KV_INT_H
#define SCOMM_KV_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "kv.h"
#include "core/scomm_int.h"

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
    int               dev;   /* device memory (CUDA, ROCm): staged */
    int               ipc;   /* its CUDA IPC export: 0 not tried yet,
                                1 made (ipc_h, ipc_off), -1 none */
    uint8_t           ipc_h[64];
    uint64_t          ipc_off;
} kv_region_t;

typedef struct scomm_kv_xfer kv_sx_t;

/* The sender's view of an RMA transfer's destination (from the
 * receiver's offer, kv_ofi.c); busy[] marks landing slots holding a chunk
 * that has no reply yet (lock held). */
typedef struct kv_rma {
    int       direct;
    uint64_t  tag, base, key, block_bytes, blocks_per_layer, slot_bytes;
    uint32_t  nslots;
    uint8_t  *busy;
} kv_rma_t;

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
    scomm_kv_layout_t sl;         /* source layout of the moved heads */
    size_t          sbb;          /* its block bytes */
    int             part;         /* only some of the source's heads */
    uint32_t        bpc, cpl;
    uint64_t        nchunks, next_seq, acked;
    uint8_t        *acked_map;
    uint8_t        *nacks;
    uint32_t       *resend;
    uint64_t        nresend;
    uint64_t        t_submit;     /* scomm_now_ns() at submit (telemetry) */
    void           *ev_in;        /* device source: recorded on the
                                     caller's stream at submit, or NULL */
    struct kv_sx_ipc *ipc;        /* the receiver's CUDA IPC offer
                                     (kv_dev.c), or NULL */
    kv_rma_t       *rma;          /* RMA data plane (BEGIN_OK's offer) */
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
    scomm_kv_layout_t sl;         /* source layout from BEGIN, with the
                                     moved heads only (the wire blocks) */
    int               region;
    int               direct;     /* bytes land in place, no regrouping */
    int               cma;
    int               ipc;        /* CUDA IPC offered: DESC chunks were
                                     written by the sender */
    int               rma;        /* chunks come by RMA (RDATA) */
    uint64_t          tag;        /* its completion data's high half */
    void             *bounce_mr;  /* landing slots (not direct) */
    struct kv_ofi    *bounce_ofi; /* whose domain registered them */
    uint8_t          *bounce;
    uint64_t          slot_bytes;
    uint32_t          nslots;
    uint8_t          *offer;      /* BEGIN_OK's payload (rma), offer_len */
    size_t            offer_len;
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
    uint32_t       plen;  /* binary payload of text (0: a string) */
    char           text[SCOMM_KV_ERRTEXT_MAX];
} kv_ctl_t;

typedef struct kv_inf {
    kv_sx_t *sx;
    uint32_t seq;
    int      slot;        /* RMA landing slot it holds, or -1 */
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
    void          *zc;     /* TX thread's ZSTD_CCtx (kv_codec.c) */
    void          *zd;     /* RX thread's ZSTD_DCtx */
    /* Device regions (kv_dev.c). TX thread's: an internal stream, two
     * pinned chunks and their events; the chunk staged ahead. */
    void          *dstream;
    void          *dev_ev[2];
    uint8_t       *dpin[2];
    size_t         dpcap[2];
    int            dnext;        /* pinned chunk the next staging uses */
    kv_sx_t       *pre_sx;       /* picked and staged ahead, in st->inf */
    uint32_t       pre_seq;
    int            pre_slot;     /* its landing slot (ofi), or -1 */
    int            pre_buf;      /* its pinned chunk, -1: host source */
    int            dipc[2];      /* chunk b's copies went into the
                                    receiver's region (CUDA IPC) */
    /* RX thread's: internal stream, event, pinned bounce image, table */
    void          *rstream;
    void          *rev;
    uint8_t       *rpin;
    size_t         rpcap;
    int32_t       *rmap;
    size_t         rmapcap;
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
    _Atomic int     cut_pre_n;     /* test hook: kv_tx_cut_hook */
    int             no_codecs;     /* test hook: as if built without */
    int             transport;     /* scomm_kv_transport_t */
    struct kv_ofi  *ofi;           /* transport ofi: kv_ofi.c */
    uint64_t        rma_chunks;    /* stored from RDATA (test hook) */
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
    /* Layer waits enqueued on callers' streams (kv_dev.c) */
    struct kv_dwctl *dwctl;
    /* CUDA IPC (kv_dev.c): made when a device region is registered */
    struct kv_ipc  *ipc;
    uint64_t        ipc_chunks;    /* sent or stored over IPC (hook) */
    int             dw_running;    /* their host functions now running */
};

struct scomm_kv_listener {
    int       fd;
    int       port;
    scomm_kv_opts_t opts;
    char      token[SCOMM_KV_TOKEN_MAX];
    int64_t   timeout_ms;
};

/* An endpoint's options, resolved and checked (kv_opts.c). */
typedef struct kv_cfg {
    size_t  chunk_size;
    int     streams, depth, zero_copy, compression, level, wire_dtype;
    int     transport;
    int64_t timeout_ms;
    int64_t reconnect_ms;
    char    token[SCOMM_KV_TOKEN_MAX];
} kv_cfg_t;

/* ---- options and errors (kv_opts.c) ---- */
/* Set the thread's last error to the formatted reason; returns status. */
scomm_status_t scomm_kv_fail(scomm_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Resolve o (NULL: defaults) into c, range-checked. */
scomm_status_t scomm_kv_cfg_resolve(const scomm_kv_opts_t *o, kv_cfg_t *c);

/* ---- socket I/O and shared helpers (kv_io.c) ---- */
int scomm_kv_iov_io(kv_stream_t *st, struct iovec *iov, int n, int wr);
int scomm_kv_io(kv_stream_t *st, void *buf, size_t len, int wr);
int scomm_kv_send_hdr(kv_stream_t *st, scomm_kv_hdr_t *h, const void *pl,
                      size_t plen);
int scomm_kv_hs_io(int fd, void *buf, size_t len, int wr, uint64_t deadline);
int scomm_kv_ensure_buf(uint8_t **buf, size_t *cap, size_t need);
int scomm_kv_ensure_f(float **buf, size_t *cap, size_t n);
void scomm_kv_abs_deadline(struct timespec *ts, uint64_t deadline);

/* ---- compression (kv_codec.c) ---- */
/* 1 (and the reason in msg) when this endpoint cannot use compression:
 * not built in, or the test hook scomm_kv_debug_no_codecs is on. */
int scomm_kv_codec_missing(const scomm_kv_ep_t *ep, int compression,
                           char *msg, size_t msglen);
/* Output bound of compressing rawlen bytes (0: codec not built in). */
size_t scomm_kv_compress_bound(int compression, size_t rawlen);
/* Compress into out (cap bytes): the compressed length, or 0 with the
 * reason in st->why_tx. TX thread. */
size_t scomm_kv_compress(kv_stream_t *st, int compression, int level,
                         const uint8_t *raw, size_t rawlen, uint8_t *out,
                         size_t cap);
/* Decompress exactly rawlen bytes into raw: 0; -1 bad data; -2 no memory
 * for a context. RX thread. */
int scomm_kv_decompress(kv_stream_t *st, int compression, const uint8_t *in,
                        size_t len, uint8_t *raw, size_t rawlen);
void scomm_kv_codec_free(kv_stream_t *st);

/* ---- sender (kv_send.c) ---- */
int scomm_kv_ctl_push(kv_stream_t *st, const scomm_kv_hdr_t *h,
                      const char *text);
/* As scomm_kv_ctl_push with a binary payload of plen (<= ERRTEXT_MAX). */
int scomm_kv_ctl_push_bin(kv_stream_t *st, const scomm_kv_hdr_t *h,
                          const void *pl, uint32_t plen);
/* Give back the landing slot an in-flight chunk held (lock held). */
void scomm_kv_rma_slot_put(kv_sx_t *sx, int slot);
void scomm_kv_sx_fail(kv_sx_t *sx, scomm_status_t status, const char *msg);
void scomm_kv_sx_free(kv_sx_t *sx);
void scomm_kv_sx_unref(scomm_kv_ep_t *ep, kv_sx_t *sx);
void *scomm_kv_tx_main(void *arg);
int scomm_kv_on_reply(kv_stream_t *st, const scomm_kv_hdr_t *h,
                      const char *text);

/* ---- receiver (kv_recv.c) ---- */
kv_rx_t *scomm_kv_rx_find(scomm_kv_ep_t *ep, uint64_t id);
void scomm_kv_rx_free(kv_rx_t *rx);
void *scomm_kv_rx_main(void *arg);

/* ---- RMA data plane (kv_ofi.c) ---- */
/* One RMA write of a chunk: len bytes from src to offset off of the
 * destination (region or landing area) the transfer's offer names. */
typedef struct kv_piece {
    const void *src;
    size_t      len;
    uint64_t    off;
} kv_piece_t;
/* Open the endpoint's libfabric endpoint on the interface of socket fd
 * (a stream's); SCOMM_ERR_UNSUPPORTED naming the package without
 * libfabric. */
scomm_status_t scomm_kv_ofi_open(scomm_kv_ep_t *ep, int fd);
void scomm_kv_ofi_close(scomm_kv_ep_t *ep);
/* Register region id with the provider (after it is filled in), and
 * forget it. */
scomm_status_t scomm_kv_ofi_reg(scomm_kv_ep_t *ep, int id);
void scomm_kv_ofi_dereg(scomm_kv_ep_t *ep, int id);
/* Receiver at BEGIN (lock held): tag rx, make its landing slots when its
 * chunks cannot land in place, and encode the offer into out (at least
 * SCOMM_KV_OFFER_FIXED + SCOMM_KV_OFFER_ADDRMAX bytes); its length, or 0
 * with a reason. */
size_t scomm_kv_ofi_offer(scomm_kv_ep_t *ep, kv_rx_t *rx, uint8_t *out,
                          char *why, size_t whylen);
void scomm_kv_ofi_rx_free(kv_rx_t *rx);
/* Sender at BEGIN_OK (lock held): take the receiver's offer into sx. */
int scomm_kv_ofi_take_offer(scomm_kv_ep_t *ep, kv_sx_t *sx,
                            const uint8_t *pl, size_t len, char *why,
                            size_t whylen);
/* TX thread: write the n pieces of chunk seq (completion data tag << 32 |
 * seq on each) and wait for their local completion; the number of writes
 * in *nwrites. 0, or -1 with the reason in st->why_tx. */
int scomm_kv_ofi_put(kv_stream_t *st, kv_sx_t *sx, uint32_t seq,
                     kv_piece_t *pc, int n, uint32_t *nwrites);
/* RX thread: wait until nwrites writes of chunk seq of rx have landed,
 * and count them consumed. 0, or -1 when they did not come within
 * KV_STALL_MS (the chunk is asked again). */
int scomm_kv_ofi_landed(kv_stream_t *st, kv_rx_t *rx, uint32_t seq,
                        uint32_t nwrites);

/* ---- handshake (kv_conn.c) ---- */
int scomm_kv_hs_read_hello(int fd, uint64_t deadline, scomm_kv_hello_t *hello,
                           char *why, size_t whylen);
int scomm_kv_hs_send_hello(scomm_kv_ep_t *ep, int fd, int type, int idx,
                           uint32_t epoch, uint64_t deadline);
void scomm_kv_hs_refuse(int fd, const char *why, int transient,
                        uint64_t deadline);

/* ---- stream loss and re-dial (kv_redial.c) ---- */
void scomm_kv_ep_fault(scomm_kv_ep_t *ep, scomm_status_t status,
                       const char *msg);
void scomm_kv_stream_dead(kv_stream_t *st, const char *why);
void scomm_kv_stream_thread_end(kv_stream_t *st);
void scomm_kv_stream_give_up(scomm_kv_ep_t *ep, kv_stream_t *st,
                             const char *how);
void scomm_kv_redial_listen(scomm_kv_ep_t *ep);
void *scomm_kv_keeper_main(void *arg);

/* ---- device regions (kv_dev.c) ---- */
/* Resolve the kind of a region at base (hint: scomm_mem_kind_t; AUTO asks
 * the runtime): *dev 1 for CUDA / ROCm device memory. ERR_UNSUPPORTED for
 * a kind the channel cannot copy or no runtime; the reason in why. */
scomm_status_t scomm_kv_dev_kind(const void *base, int hint, int *dev,
                                 char *why, size_t whylen);
/* Sender: enqueue the copies of chunk seq of sx (device source) into the
 * pinned chunk b, then an event after them. 0, or -1 (why_tx). TX
 * thread. */
int scomm_kv_dev_tx_stage(kv_stream_t *st, kv_sx_t *sx, uint32_t seq,
                          int b);
/* Wait (bounded) for pinned chunk b's copies: 0 or -1 (why_tx). */
int scomm_kv_dev_tx_wait(kv_stream_t *st, int b);
/* Receiver: pinned image of n bytes for the RX thread; NULL (st->why) when
 * it cannot be had. */
uint8_t *scomm_kv_dev_rx_image(kv_stream_t *st, size_t n);
/* Receiver: table mapping destination blocks [jlo, jhi] of a table of n
 * entries to image slots 0..; NULL when out of memory. */
int32_t *scomm_kv_dev_rx_map(kv_stream_t *st, uint32_t n, uint32_t jlo,
                             uint32_t jhi);
/* Receiver: copy what a chunk wrote into the image (slots for destination
 * blocks jlo..jhi of table dtbl) to the device layer dlayer and wait for
 * the copies (bounded). Tokens [g0, g1) of the sequence, heads
 * [dho, dho + hn); whole == 1: whole blocks (the image holds slots of
 * nb blocks in chunk order, dtbl[i0..]). 0 or -1 (st->why). */
int scomm_kv_dev_rx_store(kv_stream_t *st, const kv_region_t *r,
                          uint8_t *dlayer, const int32_t *dtbl, int whole,
                          uint32_t i0, uint32_t nb, uint64_t g0, uint64_t g1,
                          int dho, int hn);
/* Free a stream's device state (threads ended). */
void scomm_kv_dev_stream_free(kv_stream_t *st);
/* ---- same-host CUDA IPC (kv_dev.c; docs/kv.md "CUDA IPC") ---- */
/* A device region was registered: make the endpoint's IPC state (knob,
 * runtime, host identity) if it has none (lock not held). */
void scomm_kv_dev_ipc_init(scomm_kv_ep_t *ep);
/* Sender: SCOMM_KV_BEGIN_ZC_IPC if the BEGIN of sx may ask, else 0. */
uint32_t scomm_kv_dev_ipc_ask(scomm_kv_ep_t *ep, const kv_sx_t *sx);
/* Receiver at BEGIN (lock held): if rx's sender asked and its region can
 * take it, set rx->ipc and encode the offer into out
 * (SCOMM_KV_IPC_OFFER_SIZE bytes); its size, or 0 (staged). */
size_t scomm_kv_dev_ipc_offer(scomm_kv_ep_t *ep, kv_rx_t *rx, uint8_t *out);
/* Sender at BEGIN_OK (lock held): the receiver's answer; an offer that
 * this side can use becomes sx->ipc, anything else leaves it staged. */
void scomm_kv_dev_ipc_take(scomm_kv_ep_t *ep, kv_sx_t *sx,
                           const scomm_kv_hdr_t *h, const uint8_t *pl);
/* Endpoint freed (threads ended): wait for the copies, close the peers'
 * allocations, free the IPC state. */
void scomm_kv_dev_ep_free(scomm_kv_ep_t *ep);
/* A transfer's caller event (scomm_kv_sx_free). */
void scomm_kv_dev_sx_free(kv_sx_t *sx);
/* Endpoint close: detach the layer waits not yet run, wait for running
 * ones (lock not held). */
void scomm_kv_dev_ep_close(scomm_kv_ep_t *ep);

#endif /* SCOMM_KV_INT_H */
