/*
 * tl.h - the transport layer interface: one ops table per transport.
 *
 * This header is the contract between core and the transports: core calls
 * through it (p2p.c, progress.c, comm.c, shmem.c), every transport fills
 * one table, and nothing else of a transport is visible to core. So it
 * sits in core's layer of the diagram (docs/design.md, "Layers") although
 * it lives here, beside its implementations.
 *
 * A transport moves tagged messages between two ranks of one world, in order
 * per (peer, ctx, tag). It knows nothing of collectives and nothing of
 * matching: incoming messages are handed to the core matching engine
 * (core/p2p.c) through scomm_p2p_eager_begin/_end and scomm_p2p_rts, and the
 * core asks the transport to pull a rendezvous message with rndv_start once
 * a receive matches it.
 *
 * Life of a world's transport (all calls under the world's lock):
 *
 *   init() -----> bootstrap exchange -----> connect() -----> progress()...
 *   (listen /      (addresses of every        (blocking with
 *    create shm)    rank are now known)         a deadline)
 *                                                   |
 *   fini() <------------------------------------ send()/rndv_start()
 *
 * Rules:
 *  1. send() never blocks: it queues and returns; progress() moves bytes.
 *  2. Every request the transport owns completes exactly once, through
 *     scomm_req_complete(), with SCOMM_OK or an error naming the peer.
 *  3. A broken connection or a dead peer process is reported with
 *     scomm_world_fail(SCOMM_ERR_PEER_LOST, peer, ...), at once.
 *  4. Lengths and ids read from the wire are checked before use.
 *  5. No slot is NULL: a transport without a feature points the slot at
 *     the shared stub below (scomm_tl_noop, scomm_tl_mem_reg_unsupported,
 *     ...), as libfabric's fi_no_* and UCX's *_unsupported do, so callers
 *     need no NULL checks; a capability flag says what the stub stands for.
 *  6. Core never compares ops pointers or names to learn what a transport
 *     does: it reads caps and query().
 */
#ifndef SCOMM_TL_H
#define SCOMM_TL_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#include "scomm.h"

typedef struct scomm_world scomm_world_t;
typedef struct scomm_req scomm_req_t;

/* Opaque rendezvous cookie a transport attaches to an RTS. */
typedef struct scomm_tl_cookie {
    uint64_t u64[4];
} scomm_tl_cookie_t;

/* Why a world is being torn down, sent best-effort to peers. */
typedef struct scomm_tl_abort {
    int32_t status;       /* scomm_status_t */
    int32_t failed_rank;  /* world rank, or -1 */
    char    msg[200];
} scomm_tl_abort_t;

/* ---- capabilities (scomm_tl_ops_t.caps, scomm_tl_attr_t.caps) ---- */

/* Bytes move through the kernel's network stack (tcp): a waiter spinning
 * on such a peer yields the CPU each turn (the kernel's softirq work needs
 * it), and a wait on a message above eager_max sleeps at once. */
#define SCOMM_TL_CAP_KERNEL_COPY    (1ull << 0)
/* Reaches only ranks of this host, through shared memory (shm). */
#define SCOMM_TL_CAP_SHARED_MEM     (1ull << 1)
/* The ranks meet through the transport itself, not the TCP bootstrap:
 * it is chosen by its name as scomm_init's backend and is then the only
 * transport of the world (mock: threads of one process). */
#define SCOMM_TL_CAP_OWN_BOOTSTRAP  (1ull << 2)
/* mem_reg registers memory (and a registration cache may keep it); without
 * the flag mem_reg is scomm_tl_mem_reg_unsupported. */
#define SCOMM_TL_CAP_MEM_REG        (1ull << 3)

/* What a transport context can do, from query() after init. */
typedef struct scomm_tl_attr {
    uint64_t caps;       /* ops->caps, less what this host's device or
                          * provider lacks */
    size_t   eager_max;  /* largest message sent without a rendezvous */
} scomm_tl_attr_t;

/* ---- memory registration (mem_reg / mem_dereg) ---- */

/* Access a registration grants (mem_reg's access, OR'ed). */
#define SCOMM_TL_ACCESS_LOCAL        (1u << 0) /* source of sends, writes */
#define SCOMM_TL_ACCESS_REMOTE_WRITE (1u << 1) /* target of peers' writes */
#define SCOMM_TL_ACCESS_REMOTE_READ  (1u << 2) /* source of peers' reads */

/*
 * One registration of [addr, addr + len), as a transport returns it. The
 * fields are what an RDMA-style transport needs to move bytes without a
 * copy; the core only keeps the struct and hands it back to mem_dereg.
 */
typedef struct scomm_tl_mr {
    void     *handle;  /* the transport's own (a regcache region, a
                        * struct fid_mr *): what mem_dereg needs */
    void     *desc;    /* local descriptor for the transport's sends and
                        * writes from this memory (fi_mr_desc), or NULL */
    uint64_t  key;     /* remote key a peer names this memory with in an
                        * RMA write (fi_mr_key) */
    uint64_t  raddr;   /* what a peer passes as the address of addr: addr
                        * itself, or 0 where the provider counts offsets
                        * from the registration (FI_MR_VIRT_ADDR unset) */
} scomm_tl_mr_t;

typedef struct scomm_tl_ops {
    const char *name;
    uint64_t    caps;    /* SCOMM_TL_CAP_* this code can do */

    /* Create the world's context: listeners, segments. Writes this rank's
     * addresses into the world's rank table entry for this rank. */
    scomm_status_t (*init)(scomm_world_t *w, void **ctx_p);

    /* After init: what this context can do (caps narrowed to the device
     * or provider found, eager limit). The core reads it once per world. */
    void (*query)(void *ctx, scomm_tl_attr_t *attr);

    /* After the bootstrap exchange: can this transport reach peer? */
    int (*can_reach)(void *ctx, int peer);

    /* Connect to the peers this transport was chosen for (peers[] lists
     * them), blocking until done or deadline. */
    scomm_status_t (*connect)(void *ctx, const int *peers, int npeers,
                              uint64_t deadline);

    /* Queue a send request (req->peer, ctx, tag, buf, len). */
    scomm_status_t (*send)(void *ctx, scomm_req_t *req);

    /* A receive matched a rendezvous message: move its bytes into rreq.
     * rreq == NULL rejects it (truncation): the sender's request fails. */
    scomm_status_t (*rndv_start)(void *ctx, int peer, scomm_req_t *rreq,
                                 const scomm_tl_cookie_t *cookie,
                                 scomm_status_t reject_status);

    /* Make progress; returns the number of events handled. */
    int (*progress)(void *ctx);

    /* Sleeping: fds to poll (returns how many were written, <= max), and
     * hooks around the sleep (shm raises its "sleeping" flag). */
    int (*poll_fds)(void *ctx, struct pollfd *fds, int max);
    void (*sleep_begin)(void *ctx);
    void (*sleep_end)(void *ctx);

    /* Liveness check of peers this transport serves (called while a wait
     * is long); reports dead peers with scomm_world_fail. */
    void (*check_peers)(void *ctx);

    /* Called by a wait at least every heartbeat interval: publish this
     * rank's sign of life (shm: a timestamp in its segment; tcp: a
     * HEARTBEAT message to every peer). */
    void (*heartbeat)(void *ctx, uint64_t now);

    /* CLOCK_MONOTONIC ns of world rank peer's last sign of life (bytes
     * read, its heartbeat), 0 when none yet. The core's one suspects
     * check (progress.c) names the peers silent too long when a wait
     * times out: a stopped process still holds its sockets. */
    uint64_t (*last_heard)(void *ctx, int peer);

    /* Best-effort: tell every connected peer this world aborted. */
    void (*send_abort)(void *ctx, const scomm_tl_abort_t *info);

    /*
     * Memory registration (SCOMM_TL_CAP_MEM_REG). The core calls mem_reg
     * for memory whose end it will see (scomm_mem_register and
     * scomm_mem_alloc ranges, world lock held) and mem_dereg with the same
     * struct before that memory goes (scomm_mem_deregister, scomm_mem_free,
     * the communicator's release). So a transport may keep such
     * registrations in its registration cache (transport/regcache.h) until
     * mem_dereg, and must register any other buffer for one message only:
     * scomm cannot see an application unmap memory it never handed to
     * scomm (docs/design.md, "What the verbs transport taught"). A failed
     * mem_reg is no error of the call that asked: the transport then
     * registers per message. access: SCOMM_TL_ACCESS_*.
     */
    scomm_status_t (*mem_reg)(void *ctx, void *addr, size_t len,
                              unsigned access, scomm_tl_mr_t *mr);
    void (*mem_dereg)(void *ctx, scomm_tl_mr_t *mr);

    /* Release everything (after an error too). */
    void (*fini)(void *ctx);
} scomm_tl_ops_t;

/* ---- shared stubs for the slots a transport does without ---- */

/* sleep_begin, sleep_end, check_peers: nothing to do. */
void scomm_tl_noop(void *ctx);
/* mem_reg without SCOMM_TL_CAP_MEM_REG: SCOMM_ERR_UNSUPPORTED; mem_dereg:
 * nothing to release. */
scomm_status_t scomm_tl_mem_reg_unsupported(void *ctx, void *addr,
                                            size_t len, unsigned access,
                                            scomm_tl_mr_t *mr);
void scomm_tl_mem_dereg_none(void *ctx, scomm_tl_mr_t *mr);

extern const scomm_tl_ops_t scomm_tl_shm_ops;
extern const scomm_tl_ops_t scomm_tl_tcp_ops;
extern const scomm_tl_ops_t scomm_tl_ofi_ops;
extern const scomm_tl_ops_t scomm_tl_mock_ops;

#endif /* SCOMM_TL_H */
