/*
 * tl.h - the transport layer interface: one ops table per transport.
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
 *  5. Optional ops are never NULL: they point at scomm_tl_unsupported-like
 *     stubs, so callers need no NULL checks.
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

typedef struct scomm_tl_ops {
    const char *name;

    /* Create the world's context: listeners, segments. Writes this rank's
     * addresses into the world's rank table entry for this rank. */
    scomm_status_t (*init)(scomm_world_t *w, void **ctx_p);

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

    /* Peers with no sign of life for stale_ns: writes up to max world
     * ranks into ranks[], returns how many. Used to name the culprit when
     * a wait times out (a stopped process still holds its sockets). */
    int (*suspects)(void *ctx, uint64_t now, uint64_t stale_ns, int *ranks,
                    int max);

    /* Best-effort: tell every connected peer this world aborted. */
    void (*send_abort)(void *ctx, const scomm_tl_abort_t *info);

    /* Release everything (after an error too). */
    void (*fini)(void *ctx);
} scomm_tl_ops_t;

extern const scomm_tl_ops_t scomm_tl_shm_ops;
extern const scomm_tl_ops_t scomm_tl_tcp_ops;
extern const scomm_tl_ops_t scomm_tl_mock_ops;

#endif /* SCOMM_TL_H */
