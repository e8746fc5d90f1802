/*
 * ipc.h - CUDA IPC between the ranks of one host (internal): blocking
 * all_gather, broadcast and all_to_all on device buffers of a
 * native communicator as device-to-device copies out of the peers' own
 * memory (cudaIpcGetMemHandle / cudaIpcOpenMemHandle), no host staging.
 * stage.c asks here first and stages what this declines. Sends of device
 * memory to a rank of this host, blocking or not, go as offers the
 * receiver copies out of (ipc.c).
 *
 * Invariants:
 *  1. Only under the hint SCOMM_MEM_CUDA (every rank's buffers are device
 *     memory, so every rank of a collective takes the same path) on a
 *     communicator whose ranks are all on this
 *     host; a call that declines does so on every rank alike, before any
 *     byte moved, so the staged path then runs everywhere.
 *  2. Whether IPC runs is agreed: a collective exchanges every rank's
 *     record (its handle, or why not) and then every rank's open result.
 *     Any "no" (SCOMM_DEVICE_IPC=0,
 *     no IPC calls or driver, a handle that cannot be made or opened, a
 *     forced algorithm) makes every party stage instead.
 *  3. Nobody reads a peer's buffer before the peer's data is there (each
 *     rank's host waits for its caller's stream before the exchange), and
 *     nobody returns while a peer may still read its buffer (a last
 *     exchange after every rank's copies are done).
 *  4. A peer's allocation is opened once per communicator (cache by peer
 *     and handle, bounded) and closed when the communicator goes. The
 *     KV channel (kv_dev.c) uses the same export and cache for its
 *     same-host path.
 */
#ifndef SCOMM_IPC_H
#define SCOMM_IPC_H

#include "../coll/coll.h"
#include "../core/scomm_int.h"
#include "devrt.h"

/* What ipc.c borrows of comm's staging state (stage.c holds its lock). */
typedef struct scomm_ipc_ctx {
    const scomm_devrt_t *rt;
    void                *stream; /* internal, non-blocking */
    void                *ev_in;  /* for the caller's stream */
    void                *ev_out; /* for the internal stream */
} scomm_ipc_ctx_t;

/* ---- shared with the KV channel (src/kv/kv_dev.c) ---- */

/* The IPC handle of the allocation holding [p, p + n) and p's offset in
 * it (cuMemGetAddressRange_v2 + cudaIpcGetMemHandle): 0, or -1 with err
 * (no base found, [p, p + n) not inside one allocation, no handle, e.g.
 * cudaMallocAsync pool memory). */
int scomm_ipc_export(const scomm_devrt_t *rt, const void *p, size_t n,
                     scomm_devrt_ipc_handle_t *h, uint64_t *off, char *err,
                     size_t len);

/* Peer allocations opened with cudaIpcOpenMemHandle, once each (keyed by
 * peer and handle), closed by scomm_ipc_cache_fini. Not locked: its
 * owner serialises the calls. */
#define SCOMM_IPC_CACHE_MAX 64
typedef struct {
    int                      peer;
    scomm_devrt_ipc_handle_t h;
    void                    *p;
    uint64_t                 used;
} scomm_ipc_open_t;

typedef struct {
    const scomm_devrt_t *rt;
    int                  evict; /* full: 1 closes the least recently
                                   used (no copy may use it then), 0
                                   refuses the new handle */
    uint64_t             clock;
    int                  n;
    scomm_ipc_open_t     e[SCOMM_IPC_CACHE_MAX];
} scomm_ipc_cache_t;

void scomm_ipc_cache_init(scomm_ipc_cache_t *c, const scomm_devrt_t *rt,
                          int evict);
/* The peer's allocation named by h, mapped here, in *p: 0, or -1 with
 * err (the open failed, or the cache is full and does not evict). */
int scomm_ipc_cache_open(scomm_ipc_cache_t *c, int peer,
                         const scomm_devrt_ipc_handle_t *h, char **p,
                         char *err, size_t len);
/* Close every opened allocation (no copy may use one any more). */
void scomm_ipc_cache_fini(scomm_ipc_cache_t *c);

/* Run validated collective a over CUDA IPC: 1 if it ran here (*status is
 * its result), 0 if it declined (stage it; invariant 1). */
int scomm_ipc_coll(scomm_comm_t *comm, const char *name,
                   const scomm_coll_args_t *a, const scomm_ipc_ctx_t *x,
                   scomm_status_t *status);
/* ---- point-to-point (ipc.c, "A send ...", "A non-blocking send ...") */

/* Can a send of bytes to comm rank peer be offered over CUDA IPC:
 * a rank of this host, another process, above its transport's eager
 * limit (the device and the knob are asked later). */
int scomm_ipc_p2p_eligible(const scomm_comm_t *comm, int peer, size_t bytes);
/* The blocking send of device memory [buf, +bytes) as an offer; staged
 * when it cannot be offered or the receiver declines. *path: which way
 * the bytes went (SCOMM_P2P_PATH_*). Not under the world lock. */
scomm_status_t scomm_ipc_p2p_send(scomm_comm_t *comm, const char *op,
                                  const void *buf, size_t bytes, int peer,
                                  int32_t tag, int *path);
/* The non-blocking send of device memory [buf, +bytes) to comm rank
 * peer as an offer (scomm_ipc_p2p_eligible first): waits for the
 * caller's stream (bounded), takes the pinned slot a decline needs, sends
 * the offer and returns its request in *req_p, which the progress drives
 * (ipc.c "A non-blocking send"). *req_p NULL with SCOMM_OK: no offer
 * could be made, stage it as any isend. Not under the world lock. */
scomm_status_t scomm_ipc_p2p_isend(scomm_comm_t *comm, const char *op,
                                   const void *buf, size_t bytes, int peer,
                                   int32_t tag, scomm_req_t **req_p);
/* Make comm's IPC state (stage lock held), so that the receives' takes
 * (world lock) find it. */
void scomm_ipc_p2p_ready(scomm_comm_t *comm, const scomm_ipc_ctx_t *x);
/* Copy offer o of world rank wpeer into device memory dst on x->stream,
 * ev_out after it, and wait for it (bounded): SCOMM_IPC_DONE, _DECLINED
 * (*why) or _FAILED (*status). World lock held. */
int scomm_ipc_p2p_take(scomm_comm_t *comm, const scomm_ipc_ctx_t *x,
                       void *dst, int wpeer, const scomm_p2p_offer_t *o,
                       scomm_status_t *status, int *why);

/* Close every opened peer allocation and free comm's IPC state. */
void scomm_ipc_free(scomm_comm_t *comm);

#endif /* SCOMM_IPC_H */
