/*
 * backend.c - the vendor backends' common half: the registry of adapters,
 * loading a vendor library with dlopen, creating a vendor communicator
 * under a scomm communicator (its unique id travels over scomm's own
 * connections), running collectives on it under scomm's deadline, and
 * releasing it (destroy, or the vendor's abort after a failure).
 *
 *   scomm_init / split                       scomm_coll_run
 *        |                                         |
 *   load library (every rank) --agree-->      map dtype/op (or UNSUPPORTED)
 *   rank 0: get_id --broadcast (native)-->    enqueue (adapter op)
 *   comm_init -> wait --agree--> comm->vendor wait: query until OK / error /
 *                                             world fault / deadline -> abort
 *
 * Invariants:
 *  1. Every wait polls the adapter's query, the world's fault and the
 *     deadline (comm->timeout_ms), sleeping at most 1 ms between polls:
 *     a vendor call that never completes becomes SCOMM_ERR_TIMED_OUT
 *     naming the scomm operation and the vendor call, the vendor
 *     communicator is aborted, and the world is failed so that peers stop.
 *  2. Creation is all-or-nothing across ranks: the ranks compare their
 *     load and init results (native all-gather) and all return the first
 *     failing rank's status.
 *  3. The vendor state changes IDLE -> BUSY -> IDLE around an operation
 *     and to DEAD once (abort or destroy); scomm_comm_abort from another
 *     thread aborts the vendor only when no wait is running (a running
 *     wait sees the world's fault and aborts itself).
 */
#include "backend.h"
#include "../core/module.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/module.h"

/* One vendor library's row: a path that replaces the search by soname. */
#define SCOMM_BACKEND_LIB_ROW(_name, _help)                                \
    {.name = _name, .defval = "", .type = SCOMM_PARAM_STRING,              \
     .help = _help}

/* Knobs (registry rows, core/config.h): SCOMM_BACKEND is read by scomm_init
 * (core/comm.c), the libraries whenever a backend loads or is probed. */
static const scomm_param_t scomm_backend_params[] = {
    {.name = "SCOMM_BACKEND", .defval = "native", .type = SCOMM_PARAM_ENUM,
     .values = "native,gloo,mock,nccl,rccl,hccl,cncl,bkcl",
     .help = "backend of scomm_init (gloo = native; mock: ranks as "
             "threads of one process; the others: a vendor library, "
             "docs/backends.md)"},
    SCOMM_BACKEND_LIB_ROW("SCOMM_NCCL_LIBRARY", "path of libnccl.so"),
    SCOMM_BACKEND_LIB_ROW("SCOMM_RCCL_LIBRARY", "path of librccl.so"),
    SCOMM_BACKEND_LIB_ROW("SCOMM_HCCL_LIBRARY", "path of libhccl.so"),
    SCOMM_BACKEND_LIB_ROW("SCOMM_CNCL_LIBRARY", "path of libcncl.so"),
    SCOMM_BACKEND_LIB_ROW("SCOMM_BKCL_LIBRARY", "path of libbkcl.so"),
    SCOMM_BACKEND_LIB_ROW("SCOMM_CUDART_LIBRARY",
                          "path of the CUDA runtime the nccl backend "
                          "polls streams with; none: calls complete when "
                          "enqueued"),
    SCOMM_BACKEND_LIB_ROW("SCOMM_HIPRT_LIBRARY",
                          "path of the HIP runtime the rccl backend polls "
                          "streams with; none: calls complete when "
                          "enqueued"),
};

static const scomm_vendor_ops_t *const scomm_vendors[] = {
    &scomm_vendor_nccl_ops,
    &scomm_vendor_rccl_ops,
    &scomm_vendor_hccl_ops,
    &scomm_vendor_cncl_ops,
    &scomm_vendor_bkcl_ops,
};

#define SCOMM_NVENDORS SCOMM_ARRAY_SIZE(scomm_vendors)

/* A library loaded once per process (invariant 4). */
typedef struct {
    void *dl;
    void *sym;
    int   version;
    char  used[256];
} scomm_vendor_lib_t;

static pthread_mutex_t scomm_vendor_lock = PTHREAD_MUTEX_INITIALIZER;
static scomm_vendor_lib_t scomm_vendor_libs[SCOMM_NVENDORS];

/* ---- helpers ------------------------------------------------------------ */

scomm_status_t scomm_vendor_error(scomm_vendor_t *v, scomm_status_t status,
                                  const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v->err, sizeof(v->err), fmt, ap);
    va_end(ap);
    return status;
}

void *scomm_backend_dlopen(const char *env, const char *const *names,
                           const char **used, char *err, size_t len)
{
    const char *path = NULL;
    const char *why  = NULL;
    scomm_pval_t pv;
    void *dl;
    int i;

    if (env != NULL) {
        if (scomm_param_get(env, NULL, &pv, err, len) != SCOMM_OK) {
            *used = names[0];
            return NULL;
        }
        path = pv.text;
    }
    if ((path != NULL) && (path[0] != '\0')) {
        *used = path;
        dl    = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (dl == NULL) {
            why = dlerror();
            snprintf(err, len, "%s=%s cannot be loaded: %s", env, path,
                     (why != NULL) ? why : "unknown error");
        }
        return dl;
    }
    *used = names[0];
    for (i = 0; names[i] != NULL; i++) {
        dl = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (dl != NULL) {
            *used = names[i];
            return dl;
        }
        if (i == 0) {
            why = dlerror();
            snprintf(err, len, "%s not found (%s)", names[0],
                     (why != NULL) ? why : "dlopen failed");
        }
    }
    return NULL;
}

int scomm_backend_sym(void *dl, const char *sym, void **fn, int optional,
                      char *err, size_t len)
{
    *fn = dlsym(dl, sym);
    if ((*fn == NULL) && !optional) {
        snprintf(err, len, "the library has no symbol %s (too old, or not "
                 "the vendor's library)", sym);
        return -1;
    }
    return 0;
}

static int scomm_vendor_index(const char *name)
{
    size_t i;

    if (name == NULL) {
        return -1;
    }
    for (i = 0; i < SCOMM_NVENDORS; i++) {
        if (strcmp(scomm_vendors[i]->name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int scomm_backend_is_vendor(const char *name)
{
    return scomm_vendor_index(name) >= 0;
}

/*
 * Load (once) the library of vendor idx into v (ops, sym, version).
 * 0, or -1 with msg naming the library and how to install it.
 */
static int scomm_vendor_load(int idx, scomm_vendor_t *v, char *msg,
                             size_t len)
{
    const scomm_vendor_ops_t *ops = scomm_vendors[idx];
    scomm_vendor_lib_t *lib = &scomm_vendor_libs[idx];
    const char *used = ops->sonames[0];
    char err[SCOMM_VENDOR_ERR_MAX] = "";
    void *dl;
    int rc = 0;

    pthread_mutex_lock(&scomm_vendor_lock);
    v->ops = ops;
    if (lib->dl == NULL) {
        dl = scomm_backend_dlopen(ops->lib_env, ops->sonames, &used, err,
                                  sizeof(err));
        v->sym = (dl != NULL) ? calloc(1, ops->sym_bytes) : NULL;
        if (dl == NULL) {
            snprintf(msg, len, "backend %s: %s; %s (or point %s at the "
                     "library)", ops->name, err, ops->install, ops->lib_env);
            rc = -1;
        } else if (v->sym == NULL) {
            snprintf(msg, len, "backend %s: out of memory", ops->name);
            rc = -1;
        } else if (ops->bind(v, dl, err, sizeof(err)) != 0) {
            snprintf(msg, len, "backend %s: %s: %s; %s", ops->name, used,
                     err, ops->install);
            free(v->sym);
            v->sym = NULL;
            rc = -1;
        } else {
            lib->dl      = dl;
            lib->sym     = v->sym;
            lib->version = v->version;
            snprintf(lib->used, sizeof(lib->used), "%s", used);
        }
        /* A library that lacks entry points stays open: dlclose of a
         * vendor library is not safe (invariant 4). */
    } else {
        v->sym     = lib->sym;
        v->version = lib->version;
    }
    pthread_mutex_unlock(&scomm_vendor_lock);
    return rc;
}

/* ---- agreement and bootstrap over the native communicator -------------- */

typedef struct {
    int32_t status;
    int32_t rank;
} scomm_vendor_vote_t;

/* Every rank learns the first failing rank's status (invariant 2). */
static scomm_status_t scomm_vendor_agree(scomm_comm_t *comm,
                                         scomm_status_t mine, int *bad_rank)
{
    scomm_vendor_vote_t *all;
    scomm_status_t status;
    int q;

    *bad_rank = -1;
    if (comm->size == 1) {
        *bad_rank = (mine != SCOMM_OK) ? 0 : -1;
        return mine;
    }
    all = calloc((size_t)comm->size, sizeof(*all));
    if (all == NULL) {
        return SCOMM_ERR_NO_MEMORY;
    }
    all[comm->rank].status = (int32_t)mine;
    all[comm->rank].rank   = comm->rank;
    status = scomm_coll_ring_allgather_bytes(comm, all, sizeof(*all));
    if (status == SCOMM_OK) {
        for (q = 0; q < comm->size; q++) {
            if (all[q].status != SCOMM_OK) {
                status    = scomm_status_from_peer(all[q].status);
                *bad_rank = q;
                break;
            }
        }
    }
    free(all);
    return status;
}

/* Broadcast len bytes of buf from rank 0 over the native connections. */
static scomm_status_t scomm_vendor_bcast(scomm_comm_t *comm, void *buf,
                                         size_t len)
{
    scomm_coll_args_t a;

    if (comm->size == 1) {
        return SCOMM_OK;
    }
    memset(&a, 0, sizeof(a));
    a.op      = SCOMM_COLL_BROADCAST;
    a.sendbuf = buf;
    a.recvbuf = buf;
    a.count   = len;
    a.esize   = 1;
    a.bytes   = len;
    a.dtype   = SCOMM_UINT8;
    a.root    = 0;
    a.inplace = 1;
    return scomm_bcast_binomial(comm, &a);
}

/* ---- waiting (invariant 1) --------------------------------------------- */

static void scomm_vendor_kill(scomm_vendor_t *v)
{
    int s = atomic_load(&v->state);

    while (s != SCOMM_VENDOR_DEAD) {
        if (atomic_compare_exchange_weak(&v->state, &s, SCOMM_VENDOR_DEAD)) {
            v->ops->abort(v);
            return;
        }
    }
}

/*
 * Wait for what v enqueued. what names the scomm operation. On a timeout
 * or a world fault, the vendor communicator is aborted.
 */
static scomm_status_t scomm_vendor_wait(scomm_comm_t *comm, scomm_vendor_t *v,
                                        const char *what)
{
    scomm_world_t *w  = comm->world;
    uint64_t deadline = scomm_comm_deadline(comm);
    uint64_t t0       = scomm_now_ns();
    long sleep_ns     = 1000;
    scomm_status_t status;
    struct timespec ts;
    int fault;

    for (;;) {
        status = v->ops->query(v);
        if (status != SCOMM_INPROGRESS) {
            return status;
        }
        fault = atomic_load(&w->fault.status);
        if (fault != 0) {
            scomm_vendor_kill(v);
            return scomm_vendor_error(v, (scomm_status_t)fault,
                                      "%s stopped: %s; the %s communicator "
                                      "was aborted", v->cur_call,
                                      w->fault.msg, v->ops->name);
        }
        if (scomm_now_ns() >= deadline) {
            scomm_vendor_kill(v);
            return scomm_vendor_error(
                v, SCOMM_ERR_TIMED_OUT, "%s: %s did not complete within "
                "%lld ms (waited %.0f ms); the %s communicator was aborted",
                what, v->cur_call, (long long)comm->timeout_ms,
                (double)(scomm_now_ns() - t0) / 1e6, v->ops->name);
        }
        if (w->ntl > 0) {
            scomm_world_progress(w); /* peers' abort notices */
        }
        ts.tv_sec  = 0;
        ts.tv_nsec = sleep_ns;
        nanosleep(&ts, NULL);
        if (sleep_ns < 1000000) {
            sleep_ns *= 2;
        }
    }
}

/* ---- creation ------------------------------------------------------------ */

static void scomm_vendor_free(scomm_vendor_t *v)
{
    /* v->sym is the process-wide table (invariant 4). */
    free(v->rt);
    free(v);
}

scomm_status_t scomm_backend_comm_init(scomm_comm_t *comm, const char *name,
                                       scomm_comm_t *err_comm)
{
    char msg[SCOMM_ERRMSG_MAX] = "";
    scomm_vendor_t *v;
    scomm_status_t status, mine = SCOMM_OK;
    unsigned char *idbuf = NULL;
    int idx = scomm_vendor_index(name), bad = -1;
    size_t idlen;

    if (idx < 0) {
        return scomm_set_error(err_comm, SCOMM_ERR_UNSUPPORTED,
                               "scomm_init: backend '%s' is not a vendor "
                               "backend", (name != NULL) ? name : "(null)");
    }
    v = calloc(1, sizeof(*v));
    if (v == NULL) {
        mine = SCOMM_ERR_NO_MEMORY;
        snprintf(msg, sizeof(msg), "out of memory");
    } else {
        v->rank   = comm->rank;
        v->size   = comm->size;
        v->device = comm->local_rank;
        atomic_store(&v->state, SCOMM_VENDOR_IDLE);
        if (scomm_vendor_load(idx, v, msg, sizeof(msg)) != 0) {
            mine = SCOMM_ERR_UNSUPPORTED;
        }
    }
    status = scomm_vendor_agree(comm, mine, &bad);
    if (status != SCOMM_OK) {
        if ((mine == SCOMM_OK) && (bad >= 0)) {
            snprintf(msg, sizeof(msg), "backend %s: rank %d could not "
                     "load its library (%s there)", name, bad,
                     scomm_strerror(status));
        } else if (mine == SCOMM_OK) {
            snprintf(msg, sizeof(msg), "backend %s: %s", name,
                     scomm_last_error());
        }
        goto err;
    }

    /* Rank 0 makes the unique id; the others get it with its status. */
    idlen = sizeof(int32_t) + v->ops->id_bytes;
    idbuf = calloc(1, idlen);
    if (idbuf == NULL) {
        status = SCOMM_ERR_NO_MEMORY;
        snprintf(msg, sizeof(msg), "backend %s: out of memory", name);
        goto err;
    }
    if (comm->rank == 0) {
        int32_t st = (int32_t)v->ops->get_id(v, idbuf + sizeof(int32_t));

        memcpy(idbuf, &st, sizeof(st));
    }
    status = scomm_vendor_bcast(comm, idbuf, idlen);
    if (status != SCOMM_OK) {
        snprintf(msg, sizeof(msg), "backend %s: broadcasting the unique "
                 "id: %s", name, scomm_last_error());
        goto err;
    }
    memcpy(&mine, idbuf, sizeof(int32_t));
    if (mine != SCOMM_OK) {
        status = scomm_status_from_peer((int32_t)mine);
        snprintf(msg, sizeof(msg), "backend %s: rank 0 could not make the "
                 "unique id: %s", name, (comm->rank == 0) ? v->err
                                                         : "see rank 0");
        goto err;
    }

    v->cur_call = "communicator creation";
    mine = v->ops->comm_init(v, idbuf + sizeof(int32_t));
    if (mine == SCOMM_INPROGRESS) {
        mine = scomm_vendor_wait(comm, v, "scomm_init");
    }
    if ((mine != SCOMM_OK) &&
        (atomic_load(&comm->world->fault.status) == 0)) {
        /* The others may be inside the vendor's creation waiting for us:
         * fail the world so that their waits stop now, with our reason. */
        scomm_world_fail(comm->world, mine, comm->world->rank,
                         "backend %s: rank %d could not create its "
                         "communicator: %s", name, comm->rank, v->err);
    }
    status = (mine != SCOMM_OK) ? mine
                                : scomm_vendor_agree(comm, mine, &bad);
    if (atomic_load(&comm->world->fault.status) != 0) {
        status = (scomm_status_t)atomic_load(&comm->world->fault.status);
        snprintf(msg, sizeof(msg), "%s", comm->world->fault.msg);
    }
    if (status != SCOMM_OK) {
        if (msg[0] == '\0') {
            snprintf(msg, sizeof(msg), "backend %s: rank %d failed to "
                     "create its communicator (%s)", name, bad,
                     scomm_strerror(status));
        }
        if (v->vcomm != NULL) {
            scomm_vendor_kill(v);
        }
        goto err;
    }
    free(idbuf);
    comm->vendor       = v;
    comm->coll_offload = scomm_backend_coll; /* the executor's offload */
    scomm_info(SCOMM_SUB_INIT, "backend %s: rank %d of %d on device %d",
               name, v->rank, v->size, v->device);
    return SCOMM_OK;

err:
    free(idbuf);
    if (v != NULL) {
        scomm_vendor_free(v);
    }
    return scomm_set_error(err_comm, status, "%s", msg);
}

scomm_status_t scomm_backend_comm_split(scomm_comm_t *parent,
                                        scomm_comm_t *child)
{
    scomm_status_t status;

    if (parent->vendor == NULL) {
        return SCOMM_OK; /* a native parent has native children */
    }
    status = scomm_backend_comm_init(child, parent->vendor->ops->name,
                                     parent);
    if ((status == SCOMM_OK) && (parent->vendor->stream != NULL)) {
        child->vendor->stream = parent->vendor->stream;
    }
    return status;
}

/* ---- release ------------------------------------------------------------- */

void scomm_backend_comm_abort(scomm_comm_t *comm)
{
    scomm_vendor_t *v = comm->vendor;
    int s = SCOMM_VENDOR_IDLE;

    if ((v != NULL) &&
        atomic_compare_exchange_strong(&v->state, &s, SCOMM_VENDOR_DEAD)) {
        v->ops->abort(v);
    }
}

void scomm_backend_comm_release(scomm_comm_t *comm)
{
    scomm_vendor_t *v = comm->vendor;
    int s;

    if (v == NULL) {
        return;
    }
    s = atomic_exchange(&v->state, SCOMM_VENDOR_DEAD);
    if (s != SCOMM_VENDOR_DEAD) {
        if (atomic_load(&comm->world->fault.status) != 0) {
            v->ops->abort(v); /* peers may be gone: never wait for them */
        } else {
            v->ops->destroy(v);
        }
    }
    comm->vendor       = NULL;
    comm->coll_offload = NULL;
    scomm_vendor_free(v);
}

/* ---- operations -------------------------------------------------------- */

/* Enter an operation (IDLE -> BUSY), or the status why not. */
static scomm_status_t scomm_vendor_enter(scomm_comm_t *comm, const char *name)
{
    int s = SCOMM_VENDOR_IDLE;

    if (!atomic_compare_exchange_strong(&comm->vendor->state, &s,
                                        SCOMM_VENDOR_BUSY)) {
        return scomm_set_error(comm, SCOMM_ERR_ABORTED,
                               "%s: the %s communicator was aborted",
                               name, comm->vendor->ops->name);
    }
    return SCOMM_OK;
}

static void scomm_vendor_leave(scomm_vendor_t *v)
{
    int s = SCOMM_VENDOR_BUSY;

    atomic_compare_exchange_strong(&v->state, &s, SCOMM_VENDOR_IDLE);
}

/* A failure after the vendor got the call: the world fails (so peers stop
 * at once) and the message names the operation. */
static scomm_status_t scomm_vendor_failed(scomm_comm_t *comm,
                                          const char *name,
                                          scomm_status_t status)
{
    scomm_vendor_t *v = comm->vendor;

    scomm_set_error(comm, status, "%s: backend %s: %s", name, v->ops->name,
                    v->err);
    if ((status == SCOMM_ERR_TIMED_OUT) || (status == SCOMM_ERR_PEER_LOST) ||
        (status == SCOMM_ERR_SYSTEM) || (status == SCOMM_ERR_INTERNAL)) {
        scomm_vendor_kill(v);
        scomm_world_fail(comm->world, status, comm->world->rank, "%s",
                         comm->last_error);
    }
    return status;
}

/* The dtype and op of a, mapped; or ERR_UNSUPPORTED naming the vendor. */
static scomm_status_t scomm_vendor_map(scomm_comm_t *comm, const char *name,
                                       const scomm_coll_args_t *a,
                                       int reduces, int *vdt, int *vop)
{
    scomm_vendor_t *v = comm->vendor;
    char why[160] = "";

    *vop = 0;
    *vdt = v->ops->dtype(v, a->dtype, why, sizeof(why));
    if (*vdt < 0) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: backend %s has no dtype %s: %s", name,
                               v->ops->name, scomm_dtype_name(a->dtype), why);
    }
    if (reduces) {
        *vop = v->ops->redop(v, a->redop, why, sizeof(why));
        if (*vop < 0) {
            return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                                   "%s: backend %s has no op %s: %s", name,
                                   v->ops->name, scomm_redop_name(a->redop),
                                   why);
        }
    }
    return SCOMM_OK;
}

/* all_to_all(v), gather, scatter as one group of send/recv. */
static scomm_status_t scomm_vendor_emulate(scomm_comm_t *comm,
                                           const scomm_coll_args_t *a,
                                           int vdt)
{
    scomm_vendor_t *v = comm->vendor;
    const char *s     = a->sendbuf;
    char *r           = a->recvbuf;
    size_t es = a->esize, n = a->count;
    scomm_status_t status, st2;
    int p, me = comm->rank, root = a->root;

    status = v->ops->group(v, 1);
    for (p = 0; (p < comm->size) && (status == SCOMM_OK); p++) {
        switch (a->op) {
        case SCOMM_COLL_ALLTOALL:
            status = v->ops->p2p(v, 1, (void *)(s + p * n * es), n, vdt, p);
            if (status == SCOMM_OK) {
                status = v->ops->p2p(v, 0, r + p * n * es, n, vdt, p);
            }
            break;
        case SCOMM_COLL_ALLTOALLV:
            if (a->scounts[p] > 0) {
                status = v->ops->p2p(v, 1, (void *)(s + a->sdispls[p] * es),
                                     a->scounts[p], vdt, p);
            }
            if ((status == SCOMM_OK) && (a->rcounts[p] > 0)) {
                status = v->ops->p2p(v, 0, r + a->rdispls[p] * es,
                                     a->rcounts[p], vdt, p);
            }
            break;
        case SCOMM_COLL_GATHER:
            if ((p == root) && !((me == root) && a->inplace)) {
                status = v->ops->p2p(v, 1, (void *)s, n, vdt, root);
            }
            if ((status == SCOMM_OK) && (me == root) &&
                !((p == root) && a->inplace)) {
                status = v->ops->p2p(v, 0, r + p * n * es, n, vdt, p);
            }
            break;
        case SCOMM_COLL_SCATTER:
            if ((me == root) && !((p == root) && a->inplace)) {
                status = v->ops->p2p(v, 1, (void *)(s + p * n * es), n, vdt,
                                     p);
            }
            if ((status == SCOMM_OK) && (p == root) &&
                !((me == root) && a->inplace)) {
                status = v->ops->p2p(v, 0, r, n, vdt, root);
            }
            break;
        default:
            status = scomm_vendor_error(v, SCOMM_ERR_INTERNAL,
                                        "no emulation of this operation");
            break;
        }
    }
    st2 = v->ops->group(v, 0);
    return (status != SCOMM_OK) ? status : st2;
}

scomm_status_t scomm_backend_coll(scomm_comm_t *comm, const char *name,
                                  const scomm_coll_args_t *a)
{
    scomm_vendor_t *v = comm->vendor;
    const char *opname = scomm_coll_op_name(a->op);
    int reduces = (a->op == SCOMM_COLL_ALLREDUCE) ||
                  (a->op == SCOMM_COLL_REDUCESCATTER) ||
                  (a->op == SCOMM_COLL_REDUCE);
    int native  = (v->ops->colls & SCOMM_VENDOR_OP(a->op)) != 0;
    int vdt, vop;
    scomm_status_t status;

    status = scomm_vendor_map(comm, name, a, reduces, &vdt, &vop);
    if (status != SCOMM_OK) {
        return status;
    }
    if (!native && ((v->ops->p2p == NULL) || (v->ops->group == NULL))) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: backend %s has no %s and no grouped "
                               "send/recv to build it from", name,
                               v->ops->name, opname);
    }
    if (!native && a->inplace && ((a->op == SCOMM_COLL_ALLTOALL) ||
                                  (a->op == SCOMM_COLL_ALLTOALLV))) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: backend %s: in-place %s is not "
                               "supported (it is built from send/recv, "
                               "which may not overlap)", name, v->ops->name,
                               opname);
    }
    status = scomm_vendor_enter(comm, name);
    if (status != SCOMM_OK) {
        return status;
    }
    status = native ? v->ops->coll(v, a, vdt, vop)
                    : scomm_vendor_emulate(comm, a, vdt);
    if (status == SCOMM_INPROGRESS) {
        status = scomm_vendor_wait(comm, v, name);
    } else if (status == SCOMM_OK) {
        status = scomm_vendor_wait(comm, v, name);
    }
    scomm_vendor_leave(v);
    if (status != SCOMM_OK) {
        return scomm_vendor_failed(comm, name, status);
    }
    scomm_coll_record_special(comm, v->ops->name,
                              native ? "backend.vendor"
                                     : "backend.vendor_p2p",
                              native ? "vendor communicator: the vendor's "
                                       "own collective"
                                     : "vendor communicator: built from the "
                                       "vendor's grouped send/recv");
    return SCOMM_OK;
}

scomm_status_t scomm_backend_p2p(scomm_comm_t *comm, const char *name,
                                 int is_send, void *buf, size_t count,
                                 scomm_dtype_t dtype, int peer)
{
    scomm_vendor_t *v = comm->vendor;
    scomm_coll_args_t a;
    scomm_status_t status;
    int vdt, vop;

    if (v->ops->p2p == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_UNSUPPORTED,
                               "%s: backend %s has no point-to-point calls",
                               name, v->ops->name);
    }
    memset(&a, 0, sizeof(a));
    a.dtype = dtype;
    status  = scomm_vendor_map(comm, name, &a, 0, &vdt, &vop);
    if (status != SCOMM_OK) {
        return status;
    }
    status = scomm_vendor_enter(comm, name);
    if (status != SCOMM_OK) {
        return status;
    }
    status = v->ops->p2p(v, is_send, buf, count, vdt, peer);
    if ((status == SCOMM_OK) || (status == SCOMM_INPROGRESS)) {
        status = scomm_vendor_wait(comm, v, name);
    }
    scomm_vendor_leave(v);
    return (status == SCOMM_OK) ? SCOMM_OK
                                : scomm_vendor_failed(comm, name, status);
}

/* ---- public API ---------------------------------------------------------- */

scomm_status_t scomm_comm_set_stream(scomm_comm_t *comm, void *stream)
{
    scomm_status_t status = scomm_comm_check(comm, "scomm_comm_set_stream");

    if (status != SCOMM_OK) {
        return status;
    }
    if (comm->vendor == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_USAGE,
                               "scomm_comm_set_stream: the communicator has "
                               "no vendor backend (opts.backend or "
                               "SCOMM_BACKEND = nccl, rccl, hccl, cncl, "
                               "bkcl)");
    }
    pthread_mutex_lock(&comm->world->lock);
    comm->vendor->stream = stream;
    pthread_mutex_unlock(&comm->world->lock);
    return SCOMM_OK;
}

const char *scomm_comm_backend(const scomm_comm_t *comm)
{
    if ((comm == NULL) || (comm->magic != SCOMM_COMM_MAGIC)) {
        return "invalid";
    }
    if (comm->vendor != NULL) {
        return comm->vendor->ops->name;
    }
    if ((comm->world->ntl > 0) &&
        (comm->world->tl_attr[0].caps & SCOMM_TL_CAP_OWN_BOOTSTRAP)) {
        return comm->world->tls[0]->name; /* "mock": its own backend */
    }
    return "native";
}

int32_t scomm_backend_count(void)
{
    return (int32_t)SCOMM_NVENDORS;
}

scomm_status_t scomm_backend_probe(int32_t index, scomm_backend_info_t *out)
{
    scomm_vendor_t v;
    char msg[SCOMM_ERRMSG_MAX] = "";
    const scomm_vendor_ops_t *ops;
    scomm_pval_t env;

    if ((out == NULL) || (index < 0) || (index >= (int32_t)SCOMM_NVENDORS)) {
        scomm_set_thread_error("scomm_backend_probe: %s",
                               (out == NULL) ? "out is NULL"
                                             : "index out of range");
        return SCOMM_ERR_INVALID_ARG;
    }
    ops = scomm_vendors[index];
    memset(out, 0, sizeof(*out));
    memset(&v, 0, sizeof(v));
    snprintf(out->name, sizeof(out->name), "%s", ops->name);
    /* a bad value is reported by the load below */
    scomm_param_get(ops->lib_env, NULL, &env, msg, sizeof(msg));
    snprintf(out->library, sizeof(out->library), "%s",
             (env.text[0] != '\0') ? env.text : ops->sonames[0]);
    if (scomm_vendor_load(index, &v, msg, sizeof(msg)) != 0) {
        snprintf(out->detail, sizeof(out->detail), "%s", msg);
        return SCOMM_OK;
    }
    out->found = 1;
    pthread_mutex_lock(&scomm_vendor_lock);
    snprintf(out->library, sizeof(out->library), "%s",
             scomm_vendor_libs[index].used);
    pthread_mutex_unlock(&scomm_vendor_lock);
    ops->version_text(&v, out->version, sizeof(out->version));
    snprintf(out->detail, sizeof(out->detail), "ready (SCOMM_BACKEND=%s)",
             ops->name);
    return SCOMM_OK;
}

/* ---- the backend module (core/module.h) ---------------------------------- */

static const char *scomm_backend_name_at(size_t i)
{
    return (i < SCOMM_NVENDORS) ? scomm_vendors[i]->name : NULL;
}

/* world_up hook: the vendor communicator under the world communicator
 * when scomm_init's backend names a vendor (collective, all-or-none). */
static scomm_status_t scomm_backend_world_up(scomm_comm_t *comm)
{
    scomm_world_t *w = comm->world;
    scomm_status_t status;

    if (!scomm_backend_is_vendor(w->backend)) {
        return SCOMM_OK;
    }
    pthread_mutex_lock(&w->lock);
    status = scomm_backend_comm_init(comm, w->backend, comm);
    pthread_mutex_unlock(&w->lock);
    return status;
}

const scomm_module_t scomm_module_backend = {
    .name         = "backend",
    .params       = scomm_backend_params,
    .nparams      = SCOMM_ARRAY_SIZE(scomm_backend_params),
    .backend_name = scomm_backend_name_at,
    .world_up     = scomm_backend_world_up,
    .comm_split   = scomm_backend_comm_split,
    .comm_stop    = scomm_backend_comm_release,
    .comm_abort   = scomm_backend_comm_abort,
};
