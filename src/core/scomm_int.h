/*
 * scomm_int.h - internal types shared by the core, the transports and the
 * layers above: the world (processes that met at one bootstrap and their
 * connections), communicators (a context id over a subset of the world's
 * ranks), requests, and the matching engine's entry points.
 *
 * Design notes:
 *  1. A world owns connections; communicators own nothing but a rank map and
 *     a 32-bit context id carried in every message header, so a split costs
 *     no new connection.
 *  2. Everything that can wait takes a deadline; waits return the world's
 *     fault as soon as one is recorded (peer lost, abort, timeout), so a
 *     failure anywhere unblocks every waiter.
 *  3. The first fault wins and is final: a faulted world only lets
 *     communicators be destroyed.
 *  4. Requests that cross the wire are named by id (slot + generation in the
 *     world's request table), never by pointer.
 */
#ifndef SCOMM_INT_H
#define SCOMM_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "scomm.h"
#include "config.h"
#include "list.h"
#include "log.h"
#include "util.h"
#include "../transport/tl.h"

#define SCOMM_ERRMSG_MAX   512
#define SCOMM_MAX_TL       4
#define SCOMM_HOST_MAX     64
#define SCOMM_ADDR_MAX     48
#define SCOMM_SHMNAME_MAX  48
#define SCOMM_TOKEN_MAX    256
/* A transport's own address record in the rank table (ofi: provider name
 * and fi_getname address), opaque to the bootstrap. */
#define SCOMM_TL_BLOB_MAX  64
#define SCOMM_WORLD_MAX    65536

/* Internal tags: user tags are 0..SCOMM_TAG_MAX; these lie above. */
#define SCOMM_TAG_COLL     0x40000000
#define SCOMM_TAG_SPLIT    0x40000001
#define SCOMM_TAG_BARRIER  0x40000002
/* A send over CUDA IPC (core/p2p.c "IPC offers", backend/ipc.c): its
 * offer travels on the user's tag T as tag -1 - T (negative, so no other
 * tag is one), its receiver's reply on SCOMM_TAG_IPC_REPLY + seq and a
 * declined message's bytes on SCOMM_TAG_IPC_DATA + seq (seq: the
 * sender's count of offers on the communicator, SCOMM_IPC_SEQ_MASK). */
#define SCOMM_TAG_IPC_REPLY 0x50000000
#define SCOMM_TAG_IPC_DATA  0x60000000
#define SCOMM_IPC_SEQ_MASK  0x0fffffffu

#define SCOMM_COMM_MAGIC   0x53434f4du /* "SCOM" */
#define SCOMM_COMM_DEAD    0xdeadc044u

/* What one rank tells the others at bootstrap. */
typedef struct scomm_rankinfo {
    int32_t  rank;
    int32_t  pid;
    char     hostname[SCOMM_HOST_MAX];
    char     boot_id[40];
    char     tcp_addr[SCOMM_ADDR_MAX];   /* numeric IPv4/IPv6 */
    uint16_t tcp_port;
    char     shm_name[SCOMM_SHMNAME_MAX];
    uint64_t shm_size;
    uint32_t flags;                      /* reserved, 0 (on the wire) */
    uint32_t tl_blob_len;                /* <= SCOMM_TL_BLOB_MAX */
    uint8_t  tl_blob[SCOMM_TL_BLOB_MAX]; /* the ofi transport's address */
} scomm_rankinfo_t;

/* Written once, under lock, before status is published (release);
 * readers acquire-load status and may then read the rest. */
typedef struct scomm_fault {
    _Atomic int     status;      /* 0 while healthy; first error wins */
    int             failed_rank; /* world rank or -1 */
    char            msg[SCOMM_ERRMSG_MAX];
    pthread_mutex_t lock;
    _Atomic int     notified;    /* peers were told */
} scomm_fault_t;

/* An arrived message that no receive matched yet. */
typedef struct scomm_unexp {
    scomm_list_t      list;
    uint32_t          ctx;
    int32_t           tag;
    size_t            len;
    int               rndv;
    void             *data;   /* eager payload, malloc'd */
    scomm_tl_cookie_t cookie; /* rendezvous cookie */
} scomm_unexp_t;

typedef struct scomm_peer {
    int                   rank;    /* world rank */
    int                   tl_idx;  /* index in world->tls, -1 for self */
    const scomm_tl_ops_t *tl;
    scomm_list_t          posted;  /* posted receives, in order */
    scomm_list_t          unexp;   /* unmatched arrivals, in order */
    int                   local;   /* same host */
    int                   closed;  /* destroyed its world cleanly */
} scomm_peer_t;

typedef enum {
    SCOMM_REQ_SEND = 1,
    SCOMM_REQ_RECV = 2,
    SCOMM_REQ_COLL = 3,
    SCOMM_REQ_VENDOR = 4 /* a call on a vendor stream (src/backend) */
} scomm_req_type_t;

/* ---- CUDA IPC offers of point-to-point messages (core/p2p.c) ---- */

#define SCOMM_IPC_OFFER_MAGIC 0x52464f53u /* "SOFR" */
#define SCOMM_IPC_REPLY_MAGIC 0x50455253u /* "SREP" */

/* What a sender offers instead of the bytes: its buffer's allocation as
 * an IPC handle (cudaIpcMemHandle_t, 64 opaque bytes) and offset. */
typedef struct scomm_p2p_offer {
    uint32_t magic;
    uint32_t seq;        /* & SCOMM_IPC_SEQ_MASK */
    int32_t  pid;        /* the sender's */
    uint32_t pad;
    uint64_t len;        /* the message's bytes */
    uint64_t off;        /* of the buffer in its allocation */
    char     handle[64];
} scomm_p2p_offer_t;

/* The receiver's answer to an offer. */
enum {
    SCOMM_IPC_DONE      = 1, /* copied: the sender may reuse its buffer */
    SCOMM_IPC_DECLINED  = 2, /* send the bytes on SCOMM_TAG_IPC_DATA + seq */
    SCOMM_IPC_TRUNCATED = 3, /* the receive buffer is shorter */
    SCOMM_IPC_FAILED    = 4  /* the copy failed there (status) */
};

/* Why a receive declined (in the reply, for the sender's log). */
enum {
    SCOMM_IPC_WHY_HOST = 1, /* its buffer is host memory */
    SCOMM_IPC_WHY_OFF,      /* SCOMM_DEVICE_IPC=0 or no IPC calls there */
    SCOMM_IPC_WHY_PROCESS,  /* the same process as the sender */
    SCOMM_IPC_WHY_OPEN,     /* the handle could not be opened there */
    SCOMM_IPC_WHY_OTHER
};

typedef struct scomm_p2p_reply {
    uint32_t magic;
    uint32_t seq;
    int32_t  verdict;    /* SCOMM_IPC_DONE, ... */
    int32_t  why;        /* SCOMM_IPC_WHY_* (declined), status (failed) */
} scomm_p2p_reply_t;

/* Which way a receive's message came (req->ipc_path). */
enum { SCOMM_P2P_PATH_WIRE = 0, SCOMM_P2P_PATH_IPC = 1,
       SCOMM_P2P_PATH_DECLINED = 2 };

/* A receive's hook for an offer (set by the layer that posted it: device
 * memory it can copy into, backend/stage.c): SCOMM_IPC_DONE once the
 * bytes are in its buffer, SCOMM_IPC_DECLINED (*why) or SCOMM_IPC_FAILED
 * (*status, the error set on req->comm). World lock held; never waits for
 * the wire. */
typedef int (*scomm_p2p_take_fn)(scomm_req_t *req,
                                 const scomm_p2p_offer_t *o,
                                 scomm_status_t *status, int *why);

struct scomm_req {
    scomm_list_t     list;      /* posted queue, or a transport queue */
    scomm_world_t   *world;
    scomm_comm_t    *comm;
    int              type;
    _Atomic int      done;
    scomm_status_t   status;
    int              peer;      /* world rank */
    uint32_t         ctx;
    int32_t          tag;
    void            *buf;
    size_t           len;       /* send length, or receive capacity */
    size_t           xfer;      /* bytes moved so far / received length */
    uint64_t         id;        /* slot | generation << 32 */
    uint64_t         tl_u64[6]; /* transport scratch */
    void            *tl_ptr[2];
    /* A staged call on device memory (src/backend/stage.c), or an isend
     * offered over CUDA IPC (backend/ipc.c): run once by
     * scomm_req_release, under the world lock, done or not. */
    void           (*stage_end)(scomm_req_t *req);
    void            *stage_job;
    /* CUDA IPC offers (core/p2p.c): a receive's hook and the offer it
     * matched (its bytes, or the request pulling them); a reply's
     * payload and its link in the world's replies in flight. */
    scomm_p2p_take_fn ipc_take;
    void            *ipc_offer; /* malloc'd */
    size_t           ipc_offer_len;
    scomm_req_t     *ipc_pull;
    int              ipc_path;  /* SCOMM_P2P_PATH_* */
    scomm_list_t     ipc_link;
    scomm_p2p_reply_t ipc_reply;
    uint64_t         ipc_owner; /* a reply's receive (id): completed with
                                   its ipc_result once the reply went */
    scomm_status_t   ipc_result;
    /* A non-blocking send offered over CUDA IPC (backend/ipc.c): its
     * state, and the step the progress runs while it is on w->ipc_sends
     * (linked by ipc_link); 1 when it moved on. World lock held. */
    void            *ipc_send;
    int            (*ipc_step)(scomm_req_t *req);
};

struct scomm_world {
    scomm_config_t    cfg;
    int               rank;
    int               size;
    int               local_rank;
    int               local_size;
    int              *local_ranks;  /* world ranks on this host, ascending */
    scomm_rankinfo_t *info;         /* size entries, from bootstrap */
    scomm_peer_t     *peers;        /* size entries */
    char              token[SCOMM_TOKEN_MAX];
    char              master_addr[SCOMM_ADDR_MAX + 16];
    int               master_port;
    char              backend[16];  /* "native", "mock", "nccl", ... */

    const scomm_tl_ops_t *tls[SCOMM_MAX_TL];
    void             *tl_ctx[SCOMM_MAX_TL];
    scomm_tl_attr_t   tl_attr[SCOMM_MAX_TL]; /* query() after init */
    int               ntl;

    scomm_fault_t     fault;
    _Atomic int       aborting;
    int               wake_fd;      /* eventfd: wakes a sleeping wait */
    int               spin_yield;   /* sched_yield while spinning */
    /* The current wait's operation, for fault messages; atomics because
     * a thread calling scomm_comm_abort reads them without the lock. */
    _Atomic(const char *) cur_op;
    _Atomic uint64_t  cur_seq;
    uint64_t          last_hb;      /* last heartbeat published */
    /* The vendor backends' watchdog thread of this world (src/backend);
     * NULL while the world has no vendor communicator. */
    struct scomm_vendor_wd *vendor_wd;
    /* The selector's tuned policy, the same on every rank (coll/tuned.c:
     * rank 0 read it at scomm_init, the others received its bytes); NULL
     * when none applies. */
    struct scomm_coll_policy *coll_tuned;
    pthread_mutex_t   lock;         /* guards everything below */
    int               refcount;     /* communicators alive */
    /* CUDA IPC offers (core/p2p.c): receives that matched one and wait to
     * be handled by the progress, and the replies still being sent. */
    scomm_list_t      ipc_offers;
    scomm_list_t      ipc_replies;
    /* ... and the isends offered (backend/ipc.c) not over yet, and how
     * many of them poll a device event (a wait then naps, not sleeps:
     * nothing wakes it when the copy is done). */
    scomm_list_t      ipc_sends;
    int               ipc_dev_polls;

    scomm_req_t     **req_slots;    /* request table for wire ids */
    uint32_t         *req_gen;
    uint32_t          req_cap;
    uint32_t         *req_free;
    uint32_t          req_nfree;
};

struct scomm_coll_args; /* coll/coll.h */

struct scomm_comm {
    uint32_t        magic;
    scomm_world_t  *world;
    int             rank;
    int             size;
    int            *ranks;       /* comm rank -> world rank */
    int             local_rank;
    int             local_size;
    uint32_t        ctx;
    uint32_t        nsplit;      /* children created so far */
    int64_t         timeout_ms;
    uint64_t        op_seq;      /* collectives issued so far */
    const char     *cur_op;      /* for error messages */
    char            last_error[SCOMM_ERRMSG_MAX];
    scomm_list_t    grave;       /* in the destroyed list, after destroy */
    scomm_coll_record_t last_sel;
    /* The selector's last choice per operation (coll/select.c), so a loop
     * of one call skips the rules and the reason's formatting; NULL until
     * the first collective, freed at destroy. */
    struct scomm_coll_sel_cache *sel_cache;
    /* Shared-memory regions and the shared-memory collectives' state
     * (core/shmem.h); NULL until first used. */
    struct scomm_shmem *shmem;
    /* Non-blocking collectives: worker, queue, fusion (src/overlap);
     * NULL until first used. */
    struct scomm_overlap *overlap;
    /* This communicator's metrics (src/telemetry); NULL until first
     * used. */
    struct scomm_tm_comm *tm;
    /* A vendor library's communicator (src/backend: nccl, hccl, ...) the
     * collectives go to, and the function that runs them there
     * (coll.h, scomm_coll_offload_fn); NULL for the native backend. */
    struct scomm_vendor *vendor;
    scomm_status_t (*coll_offload)(scomm_comm_t *comm, const char *name,
                                   const struct scomm_coll_args *a);
    /* Host layout and sub-communicators of the hierarchical collectives
     * (coll/hier.c); NULL until first used. */
    struct scomm_coll_hier *hier;
    /* Device buffers on a native communicator (src/backend/stage.c): the
     * caller's stream (scomm_comm_set_stream), the memory-kind hint
     * (scomm_mem_kind_t) and the staging state (NULL until first used). */
    void                   *dev_stream;
    int                     dev_hint;
    struct scomm_dev_stage *dev_stage;
    /* CUDA IPC between the ranks of one host (src/backend/ipc.c): the
     * agreement and the peers' opened memory; NULL until first used. */
    struct scomm_dev_ipc   *dev_ipc;
};

/* ---- errors ---- */
/* A status a peer sent us: only real error codes are taken as they are,
 * anything else (0, positive, unknown) becomes SCOMM_ERR_ABORTED. */
static inline scomm_status_t scomm_status_from_peer(int32_t v)
{
    return ((v < 0) && (v >= SCOMM_ERR_CHECKSUM)) ? (scomm_status_t)v
                                                   : SCOMM_ERR_ABORTED;
}

scomm_status_t scomm_set_error(scomm_comm_t *comm, scomm_status_t status,
                               const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void scomm_set_thread_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
/* Record a world fault (first one wins), wake waiters, tell peers. */
void scomm_world_fail(scomm_world_t *w, scomm_status_t status,
                      int failed_rank, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void scomm_world_wake(scomm_world_t *w);
/* Tell the peers about the recorded fault, once; world lock held. */
void scomm_world_notify(scomm_world_t *w);
/* A peer said goodbye (clean scomm_comm_destroy): its exit is no failure
 * unless someone still waits for it. */
void scomm_world_peer_closed(scomm_world_t *w, int peer);

/* ---- requests ---- */
scomm_req_t *scomm_req_new(scomm_world_t *w, scomm_comm_t *comm, int type);
void scomm_req_release(scomm_req_t *req);
void scomm_req_complete(scomm_req_t *req, scomm_status_t status);
/* A send whose message did not fit the peer's posted receive: record the
 * error on its communicator and complete it TRUNCATED. */
void scomm_req_truncated(scomm_req_t *req, int peer);
scomm_req_t *scomm_req_lookup(scomm_world_t *w, uint64_t id);

/* ---- matching engine, called by transports ---- */
typedef struct scomm_rx {
    scomm_req_t   *req;   /* matched receive, or NULL */
    scomm_unexp_t *ux;    /* unexpected record, or NULL */
    void          *scratch;
} scomm_rx_t;

void *scomm_p2p_eager_begin(scomm_world_t *w, int peer, uint32_t ctx,
                            int32_t tag, size_t len, scomm_rx_t *rx);
void scomm_p2p_eager_end(scomm_world_t *w, int peer, scomm_rx_t *rx);
/* eager_begin + copy + eager_end, for transports holding the whole payload
 * in memory (self sends, ofi's receive buffers). */
void scomm_p2p_eager_copy(scomm_world_t *w, int peer, uint32_t ctx,
                          int32_t tag, const void *data, size_t len);
void scomm_p2p_rts(scomm_world_t *w, int peer, uint32_t ctx, int32_t tag,
                   size_t len, const scomm_tl_cookie_t *cookie);
/* The offers matched so far: each receive's hook takes or declines it,
 * its reply goes out; and each isend offered over CUDA IPC takes its
 * next step (scomm_world_progress, world lock held, outside the
 * transports' callbacks). Returns how many moved on. */
int scomm_p2p_offers_progress(scomm_world_t *w);
/* The offer tag of user tag t (0..SCOMM_TAG_MAX). */
static inline int32_t scomm_tag_offer(int32_t t)
{
    return -1 - t;
}

/* ---- point-to-point, used by the API and by collectives ---- */
/* peer is a rank of comm; len in bytes. */
scomm_status_t scomm_p2p_isend(scomm_comm_t *comm, int peer, int32_t tag,
                               const void *buf, size_t len,
                               scomm_req_t **req_p);
scomm_status_t scomm_p2p_irecv(scomm_comm_t *comm, int peer, int32_t tag,
                               void *buf, size_t len, scomm_req_t **req_p);
/* Wait for n requests under the comm's deadline; releases them all. */
scomm_status_t scomm_p2p_waitall(scomm_comm_t *comm, scomm_req_t **reqs,
                                 int n);
/* scomm_p2p_waitall of one request, and which way its message came
 * (SCOMM_P2P_PATH_*, a receive's; 0 for a send). */
scomm_status_t scomm_p2p_wait_path(scomm_comm_t *comm, scomm_req_t *req,
                                   int *path);
scomm_status_t scomm_p2p_sendrecv(scomm_comm_t *comm, const void *sbuf,
                                  size_t slen, int dst, void *rbuf,
                                  size_t rlen, int src, int32_t tag);

/* ---- progress ---- */
/* Rank in comm of world rank wrank, or -1. */
/* A communicator struct of size ranks on world w (ranks[] zeroed, for the
 * caller to fill), or NULL when out of memory. Not registered anywhere:
 * scomm_comm_split and the hierarchical sub-communicators use it. */
scomm_comm_t *scomm_comm_new(scomm_world_t *w, int rank, int size,
                             uint32_t ctx);
int scomm_comm_rank_of(const scomm_comm_t *comm, int wrank);
/* Capabilities (SCOMM_TL_CAP_*) of the transport that reaches world rank
 * wrank; 0 for this rank itself. */
static inline uint64_t scomm_peer_caps(const scomm_world_t *w, int wrank)
{
    int t = w->peers[wrank].tl_idx;

    return (t >= 0) ? w->tl_attr[t].caps : 0;
}
/* 1 if every other rank of comm is reached by a transport with all of the
 * capabilities in caps. */
int scomm_comm_peers_have(const scomm_comm_t *comm, uint64_t caps);
/* Heartbeat interval for a wait with this timeout (the configured one,
 * shrunk to a quarter of short timeouts, at least 10 ms). */
uint64_t scomm_hb_interval_ns(const scomm_world_t *w, int64_t timeout);
int scomm_world_progress(scomm_world_t *w);
/* Wait until the n requests (NULL entries skipped) are done, or the
 * world's fault, or deadline (world lock held). */
scomm_status_t scomm_world_wait(scomm_world_t *w, scomm_comm_t *comm,
                                scomm_req_t **reqs, int n, uint64_t deadline);

/* The transports built into this library, comma separated in the order
 * scomm_init tries them ("shm,tcp"); static, never NULL. */
const char *scomm_tl_names(void);

/*
 * What a wait on something other than requests waits for (coll/direct.c:
 * the peers' counters in shared memory). scomm_world_wait_until runs the
 * same loop as scomm_world_wait around it: progress, heartbeats, liveness
 * checks, spin then sleep, the fault record, the deadline naming the
 * culprit, a departed peer noticed. The callbacks run with the world lock
 * held.
 */
typedef struct scomm_wait_cond {
    /* 1 once the wait is over; called every turn. */
    int (*done)(void *arg);
    /* The world ranks it still waits for (at most max), and, when what is
     * not NULL, what it waits for from them, appended to the timeout
     * message (" to publish its result of 3"). Returns how many. */
    int (*pending)(void *arg, int *wranks, int max, char *what,
                   size_t len);
    void *arg;
    /* Raised while this rank sleeps in the wait, or NULL: whoever ends
     * the wait and sees it up writes this rank's wake eventfd. */
    _Atomic uint32_t *sleeping;
    /* Said after the time in messages: " in the direct algorithm", or "". */
    const char *where;
    /* Transports are progressed every turn (0: their progress is what ends
     * the wait) or at most this often (their notices still flow). */
    uint64_t progress_ns;
    /* Sleeps start at sleep_min_ns and double up to sleep_max_ns (a
     * publisher that cannot write our eventfd is then seen in time). */
    uint64_t sleep_min_ns;
    uint64_t sleep_max_ns;
    /* Liveness checks of the peers at least this often. */
    uint64_t check_ns;
    /* 1: after raising *sleeping, also issue the process-wide barrier
     * (scomm_membarrier_global), so that publishers that ran no fence
     * between their counter store and their look at *sleeping are
     * ordered too (the direct algorithms, src/coll/direct.c). */
    int      asym_fence;
} scomm_wait_cond_t;

/* Wait until cond->done, or the world's fault, or deadline (world lock
 * held): SCOMM_OK, or the fault's status with comm's error set. */
scomm_status_t scomm_world_wait_until(scomm_comm_t *comm,
                                      const scomm_wait_cond_t *cond,
                                      uint64_t deadline);

/* ---- bootstrap ---- */
scomm_status_t scomm_bootstrap_exchange(scomm_world_t *w, uint64_t deadline,
                                        char *err, size_t errlen);
/* This rank cannot join (why): tell the others through rank 0's store, so
 * they fail at once naming it (bootstrap.c note 5); best effort, bounded. */
void scomm_bootstrap_fail(scomm_world_t *w, uint64_t deadline,
                          const char *why);

/* ---- validation shared by API entry points ---- */
scomm_status_t scomm_comm_check(scomm_comm_t *comm, const char *op);

static inline uint64_t scomm_comm_deadline(const scomm_comm_t *comm)
{
    return scomm_deadline_ms(comm->timeout_ms);
}

#endif /* SCOMM_INT_H */
