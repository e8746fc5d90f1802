/*
 * backend.h - vendor backends (internal): one ops table per vendor library
 * (NCCL/RCCL, HCCL, CNCL, BKCL), loaded with dlopen at run time; the
 * stream-ordered call path, the completion-event ring and the watchdog.
 *
 * A vendor communicator lives under a scomm communicator (comm->vendor):
 * the native world exists first and carries the bootstrap (rank 0 makes
 * the vendor's unique id and broadcasts it over scomm's own connections).
 * Collectives and point-to-point calls of such a communicator are
 * enqueued on its stream and return:
 *
 *   call --map--> enqueue (adapter) --> record a completion event --> return
 *                                       (none while the stream captures)
 *   watchdog thread (one per world, watchdog.c): polls the events and the
 *   vendor's asynchronous error; past the deadline it asks the peers how
 *   far they got (over the native connections), fails the world naming the
 *   operation, its number and the ranks that never reached it, and aborts
 *   the vendor communicator.
 *
 * Invariants:
 *  1. No vendor header is needed to build: each adapter declares the C ABI
 *     it uses itself, from the vendor's documentation, with the version it
 *     follows named in its header comment.
 *  2. An adapter never waits: it enqueues on the stream it is given and
 *     returns SCOMM_OK, SCOMM_INPROGRESS (NCCL's non-blocking communicator
 *     still takes the call: backend.c polls the asynchronous state until it
 *     settles, under the deadline) or an error with a message in v->err.
 *  3. Every call enqueued outside a capture gets a place in v's event ring
 *     (SCOMM_VENDOR_RING slots; an event is created the first time a slot
 *     is used, never on the call path after that). Sequence numbers count
 *     the calls enqueued for execution, 1, 2, ...; calls captured into a
 *     graph are not numbered.
 *  4. A vendor communicator is aborted or destroyed exactly once, never
 *     while a vendor call on it runs: state IDLE -> BUSY -> IDLE around a
 *     call (for a whole group on the thread that opened it), an abort of a
 *     BUSY communicator becomes KILL and the caller aborts when it leaves;
 *     DEAD is final. Every abort and destroy holds v->poll_lock, as do the
 *     watchdog's asynchronous-error queries.
 *  5. Libraries are opened once per process and never closed (vendor
 *     libraries keep threads that outlive their communicators).
 *  6. Lock order: world lock, then the watchdog's lock, then v->poll_lock.
 *     The watchdog thread only try-locks the world lock.
 */
#ifndef SCOMM_BACKEND_H
#define SCOMM_BACKEND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/scomm_int.h"
#include "../coll/coll.h"
#include "devrt.h"

#define SCOMM_VENDOR_ERR_MAX 320
#define SCOMM_VENDOR_RING    1024 /* completion events per communicator */

typedef struct scomm_vendor scomm_vendor_t;
typedef struct scomm_vendor_wd scomm_vendor_wd_t;

/* Collectives an adapter runs natively (bit per scomm_coll_op_t). */
#define SCOMM_VENDOR_OP(_op) (1u << (_op))

typedef struct scomm_vendor_ops {
    const char        *name;       /* "nccl" */
    const char        *lib_env;    /* "SCOMM_NCCL_LIBRARY" */
    const char *const *sonames;    /* tried in order, NULL-terminated */
    const char        *install;    /* how to get the library */
    scomm_rt_kind_t    rt_kind;    /* the runtime of its streams */
    size_t             id_bytes;   /* size of the vendor's unique id */
    size_t             sym_bytes;  /* size of the adapter's symbol table */
    uint32_t           colls;      /* SCOMM_VENDOR_OP() bits run natively */

    /* Resolve the symbols of dl into sym; 0, or -1 with err naming the
     * missing symbol. Also sets v->version (0: unknown). */
    int (*bind)(scomm_vendor_t *v, void *dl, char *err, size_t len);
    /* Version as text ("2.21.5"); "unknown" when the API has none. */
    void (*version_text)(const scomm_vendor_t *v, char *buf, size_t len);

    /* Vendor id of dtype / op, or -1 with why (a phrase) when the vendor
     * (or this version of it) lacks it. */
    int (*dtype)(const scomm_vendor_t *v, scomm_dtype_t dt, char *why,
                 size_t len);
    int (*redop)(const scomm_vendor_t *v, scomm_redop_t op, char *why,
                 size_t len);

    /* The calls below return SCOMM_OK, SCOMM_INPROGRESS or an error; on an
     * error v->err names the vendor call and the vendor's own message, and
     * v->cur_call is the vendor call made. */
    scomm_status_t (*get_id)(scomm_vendor_t *v, void *id);
    scomm_status_t (*comm_init)(scomm_vendor_t *v, const void *id);
    /* Enqueue one natively supported collective (a->op in colls). */
    scomm_status_t (*coll)(scomm_vendor_t *v, const scomm_coll_args_t *a,
                           int vdt, int vop, void *stream);
    /* Optional (NULL): point-to-point, and grouping of calls (thread-wide
     * in every vendor library: NCCL's ncclGroupStart/End). */
    scomm_status_t (*p2p)(scomm_vendor_t *v, int is_send, void *buf,
                          size_t count, int vdt, int peer, void *stream);
    scomm_status_t (*group)(scomm_vendor_t *v, int start);
    /* The vendor's asynchronous state: OK, INPROGRESS (creation or a call
     * not settled yet) or its error, described in err (naming the call
     * given in what). Safe from another thread: writes nothing of v. */
    scomm_status_t (*async)(scomm_vendor_t *v, const char *what, char *err,
                            size_t len);
    /* Release: abort (the vendor's abort, never blocks on peers) or
     * destroy (clean). Called once, poll_lock held. */
    void (*abort)(scomm_vendor_t *v);
    void (*destroy)(scomm_vendor_t *v);
} scomm_vendor_ops_t;

enum {
    SCOMM_VENDOR_IDLE = 0,
    SCOMM_VENDOR_BUSY = 1,
    SCOMM_VENDOR_KILL = 2, /* abort asked while BUSY: the caller does it */
    SCOMM_VENDOR_DEAD = 3
};

/* One place in the event ring (invariant 3). */
typedef struct scomm_vendor_slot {
    void            *ev;       /* the runtime's event, made on first use */
    void            *stream;
    uint64_t         seq_lo;   /* first call it completes */
    _Atomic uint64_t seq_hi;   /* last call it completes */
    uint64_t         t_ns;     /* when seq_lo was enqueued */
    uint64_t         deadline; /* t_ns + the communicator's timeout */
    const char      *what;     /* scomm operation of seq_lo */
    const char      *call;     /* vendor call of seq_lo */
} scomm_vendor_slot_t;

struct scomm_vendor {
    const scomm_vendor_ops_t *ops;
    void           *sym;       /* the adapter's symbol table (shared) */
    void           *dl;        /* the vendor library */
    void           *vcomm;     /* the vendor's communicator */
    _Atomic(void *) stream;    /* scomm_comm_set_stream(); NULL: default */
    const scomm_devrt_t *rt;   /* NULL: calls complete when enqueued */
    scomm_comm_t   *comm;      /* the scomm communicator over it */
    int             rank;
    int             size;
    int             device;    /* device ordinal (local rank) */
    int             version;   /* MAJOR*10000 + MINOR*100 + PATCH, 0 unknown */
    _Atomic int     state;     /* SCOMM_VENDOR_* (invariant 4) */
    const char     *cur_call;  /* the vendor call made last */
    char            err[SCOMM_VENDOR_ERR_MAX];

    /* the event ring: producer under the world lock, consumers under
     * poll_lock */
    scomm_vendor_slot_t *ring;
    _Atomic uint64_t head;     /* slots filled */
    _Atomic uint64_t tail;     /* slots retired (their event is done) */
    _Atomic uint64_t enq;      /* calls enqueued (the last sequence) */
    _Atomic uint64_t done;     /* calls known complete */
    _Atomic uint64_t captured; /* calls captured into graphs */
    _Atomic(const char *) last_what; /* the last call, for messages */
    pthread_mutex_t poll_lock;
    char            poll_err[SCOMM_VENDOR_ERR_MAX];

    scomm_vendor_t *wd_next;   /* the watchdog's list */
};

/* ---- adapters (one file each) ---- */
extern const scomm_vendor_ops_t scomm_vendor_nccl_ops;
extern const scomm_vendor_ops_t scomm_vendor_rccl_ops;
extern const scomm_vendor_ops_t scomm_vendor_hccl_ops;
extern const scomm_vendor_ops_t scomm_vendor_cncl_ops;
extern const scomm_vendor_ops_t scomm_vendor_bkcl_ops;

/* ---- the backend module's hooks (core/module.h) and the collective
 * executor's offload (coll/exec.c) ---- */

/* 1 if name is a vendor backend ("nccl", "rccl", "hccl", "cncl", "bkcl"). */
int scomm_backend_is_vendor(const char *name);

/* Create comm's vendor communicator (collective over comm). World lock
 * held. Every rank returns the same status; comm->vendor is set on
 * success only. Errors are recorded on err_comm (comm, or its parent). */
scomm_status_t scomm_backend_comm_init(scomm_comm_t *comm, const char *name,
                                       scomm_comm_t *err_comm);

/* Child of a split: a vendor communicator of the parent's vendor. */
scomm_status_t scomm_backend_comm_split(scomm_comm_t *parent,
                                        scomm_comm_t *child);

/* scomm_comm_abort(): the vendor's abort (now, or by the thread inside a
 * vendor call when it leaves). No lock. */
void scomm_backend_comm_abort(scomm_comm_t *comm);

/* scomm_comm_destroy(): destroy (or abort, after a fault) and free. No
 * lock held. */
void scomm_backend_comm_release(scomm_comm_t *comm);

/* ---- the call path (the collective executor's offload and the API) ---- */

/* Enqueue a validated collective on comm's vendor communicator; world
 * lock held. Records comm->last_sel (algo = the vendor's name). */
scomm_status_t scomm_backend_coll(scomm_comm_t *comm, const char *name,
                                  const scomm_coll_args_t *a);

/* A collective of a vendor communicator, from the public call: enqueued
 * through the executor (scomm_coll_run); with req_p, a request that
 * completes when its event does. */
scomm_status_t scomm_backend_post(scomm_comm_t *comm, const char *name,
                                  const scomm_coll_args_t *a,
                                  scomm_req_t **req_p);

/* Point-to-point on the vendor communicator (peer: rank of comm), the
 * public send/recv (req_p NULL) and isend/irecv. ERR_UNSUPPORTED when the
 * vendor has no send/recv. */
scomm_status_t scomm_backend_p2p(scomm_comm_t *comm, const char *name,
                                 int is_send, void *buf, size_t count,
                                 scomm_dtype_t dtype, int peer,
                                 scomm_req_t **req_p);

/* Requests of type SCOMM_REQ_VENDOR (scomm_test, scomm_wait). */
scomm_status_t scomm_backend_req_test(scomm_req_t *req, int32_t *done);
scomm_status_t scomm_backend_req_wait(scomm_req_t *req);

/* scomm_group_start/end: the vendors' group calls on this thread. */
void scomm_backend_group_start(void);
scomm_status_t scomm_backend_group_end(void);

/* ---- helpers for the adapters ---- */

/* dlopen the first of names[] (after the path in the variable env, a row of
 * the registry, when set); returns the handle or NULL with err. *used gets
 * the name that loaded or was tried. */
void *scomm_backend_dlopen(const char *env, const char *const *names,
                           const char **used, char *err, size_t len);

/* dlsym into *fn; 0, or -1 (err names sym) unless optional. */
int scomm_backend_sym(void *dl, const char *sym, void **fn, int optional,
                      char *err, size_t len);

/* Format v->err ("ncclAllReduce: <vendor message> (code N)") and return
 * status. */
scomm_status_t scomm_vendor_error(scomm_vendor_t *v, scomm_status_t status,
                                  const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- between backend.c and watchdog.c ---- */

/* Start watching v (world lock held; starts the world's watchdog thread
 * with the first vendor communicator); stop watching it (no lock held;
 * the last one stops the thread). */
scomm_status_t scomm_vendor_wd_add(scomm_vendor_t *v, char *err,
                                   size_t len);
void scomm_vendor_wd_remove(scomm_vendor_t *v);

/* Retire the events that are done, in ring order (poll_lock held);
 * *oldest: the first slot still pending, or NULL. An event error returns
 * SCOMM_ERR_SYSTEM with v->poll_err. */
scomm_status_t scomm_vendor_poll(scomm_vendor_t *v,
                                 scomm_vendor_slot_t **oldest);

/* Abort v now or when its vendor call returns (invariant 4). */
void scomm_vendor_kill(scomm_vendor_t *v);

/* The vendor reported an asynchronous error (described by fmt): give a
 * peer's notice up to 100 ms to arrive first (the root cause wins), then
 * fail the world with it, naming the last call, and abort v. Returns the
 * world's fault status. No lock held. */
scomm_status_t scomm_vendor_async_failed(scomm_comm_t *comm,
                                         scomm_vendor_t *v,
                                         scomm_status_t status,
                                         const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Poll the vendor's asynchronous state until the call it is still taking
 * settles (invariant 2): OK, its error (v->err), the world's fault, an
 * abort, or SCOMM_ERR_TIMED_OUT at comm's deadline. locked: the world lock
 * is held (peers' abort notices are progressed meanwhile). */
scomm_status_t scomm_vendor_settle(scomm_comm_t *comm, scomm_vendor_t *v,
                                   const char *what, int locked);

#include "stage.h"

#endif /* SCOMM_BACKEND_H */
