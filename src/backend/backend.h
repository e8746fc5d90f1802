/*
 * backend.h - vendor backends (internal): one ops table per vendor library
 * (NCCL/RCCL, HCCL, CNCL, BKCL), loaded with dlopen at run time, and the
 * entry points the core and the collectives layer call.
 *
 * A vendor communicator lives under a scomm communicator (comm->vendor):
 * the native world exists first and carries the bootstrap (rank 0 makes
 * the vendor's unique id and broadcasts it over scomm's own connections);
 * collectives that pass scomm_coll_run()'s checks go to the vendor.
 *
 * Invariants:
 *  1. No vendor header is needed to build: each adapter declares the C ABI
 *     it uses itself, from the vendor's documentation, with the version it
 *     follows named in its header comment.
 *  2. An adapter never waits: it enqueues (op), and reports progress
 *     (query: SCOMM_OK done, SCOMM_INPROGRESS, or an error with a message
 *     in v->err). backend.c owns every wait, polls with the communicator's
 *     deadline, and on expiry aborts the vendor communicator.
 *  3. A vendor communicator is aborted or destroyed exactly once
 *     (v->state moves IDLE/BUSY -> DEAD once, by compare-and-swap).
 *  4. Libraries are opened once per process and never closed (vendor
 *     libraries keep threads that outlive their communicators).
 */
#ifndef SCOMM_BACKEND_H
#define SCOMM_BACKEND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/scomm_int.h"
#include "../coll/coll.h"

#define SCOMM_VENDOR_ERR_MAX 320

typedef struct scomm_vendor scomm_vendor_t;

/* Collectives an adapter runs natively (bit per scomm_coll_op_t). */
#define SCOMM_VENDOR_OP(_op) (1u << (_op))

typedef struct scomm_vendor_ops {
    const char        *name;       /* "nccl" */
    const char        *lib_env;    /* "SCOMM_NCCL_LIBRARY" */
    const char *const *sonames;    /* tried in order, NULL-terminated */
    const char        *install;    /* how to get the library */
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
     * error v->err names the vendor call and the vendor's own message. */
    scomm_status_t (*get_id)(scomm_vendor_t *v, void *id);
    scomm_status_t (*comm_init)(scomm_vendor_t *v, const void *id);
    /* Enqueue one natively supported collective (a->op in colls). */
    scomm_status_t (*coll)(scomm_vendor_t *v, const scomm_coll_args_t *a,
                           int vdt, int vop);
    /* Optional (NULL): point-to-point and grouping of it. */
    scomm_status_t (*p2p)(scomm_vendor_t *v, int is_send, void *buf,
                          size_t count, int vdt, int peer);
    scomm_status_t (*group)(scomm_vendor_t *v, int start);
    /* Progress of what was enqueued (vendor async state, stream). */
    scomm_status_t (*query)(scomm_vendor_t *v);
    /* Release: abort (the vendor's abort, never blocks on peers) or
     * destroy (clean). Called once. */
    void (*abort)(scomm_vendor_t *v);
    void (*destroy)(scomm_vendor_t *v);
} scomm_vendor_ops_t;

enum {
    SCOMM_VENDOR_IDLE = 0,
    SCOMM_VENDOR_BUSY = 1,
    SCOMM_VENDOR_DEAD = 2
};

struct scomm_vendor {
    const scomm_vendor_ops_t *ops;
    void        *sym;       /* the adapter's symbol table (shared) */
    void        *vcomm;     /* the vendor's communicator */
    void        *stream;    /* scomm_comm_set_stream(); NULL: default */
    void        *rt;        /* adapter's runtime state (stream query) */
    int          rank;
    int          size;
    int          device;    /* device ordinal (local rank) */
    int          version;   /* MAJOR*10000 + MINOR*100 + PATCH, 0 unknown */
    _Atomic int  state;     /* SCOMM_VENDOR_* */
    const char  *cur_call;  /* the vendor call being waited for */
    char         err[SCOMM_VENDOR_ERR_MAX];
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

/* Run a validated collective on comm's vendor communicator; world lock
 * held. Records comm->last_sel (algo = the vendor's name). */
scomm_status_t scomm_backend_coll(scomm_comm_t *comm, const char *name,
                                  const scomm_coll_args_t *a);

/* Point-to-point on the vendor communicator (peer: rank of comm); world
 * lock held. ERR_UNSUPPORTED when the vendor has no send/recv. */
scomm_status_t scomm_backend_p2p(scomm_comm_t *comm, const char *name,
                                 int is_send, void *buf, size_t count,
                                 scomm_dtype_t dtype, int peer);

/* scomm_comm_abort(): the vendor's abort, unless a wait in progress will
 * do it (it sees the world's fault). No lock. */
void scomm_backend_comm_abort(scomm_comm_t *comm);

/* scomm_comm_destroy(): destroy (or abort, after a fault) and free. */
void scomm_backend_comm_release(scomm_comm_t *comm);

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

#endif /* SCOMM_BACKEND_H */
