/*
 * backend.c - the vendor backends' common half: the registry of adapters,
 * loading a vendor library with dlopen, creating a vendor communicator
 * under a scomm communicator (its unique id travels over scomm's own
 * connections) with its event ring and its place in the world's watchdog,
 * and releasing it (destroy, or the vendor's abort after a failure). The
 * call path is call.c's, the watchdog watchdog.c's.
 *
 *   scomm_init / split
 *        |
 *   load library (every rank) --agree-->
 *   rank 0: get_id --broadcast (native)-->
 *   comm_init -> settle --agree--> comm->vendor, its runtime (devrt.c),
 *                                  the watchdog watches it
 *
 * Invariants:
 *  1. Creation is all-or-nothing across ranks: the ranks compare their
 *     load and init results (native all-gather) and all return the first
 *     failing rank's status.
 *  2. Release stops the watchdog watching the communicator before the
 *     vendor's destroy (or abort, after a fault) runs, so no thread polls
 *     a communicator that is gone.
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

/* One library's row: a path that replaces the search by soname. */
#define SCOMM_BACKEND_LIB_ROW(_name, _help)                                \
    {.name = _name, .defval = "", .type = SCOMM_PARAM_STRING,              \
     .help = _help}

/* Knobs (registry rows, core/config.h): SCOMM_BACKEND is read by scomm_init
 * (core/comm.c), the libraries whenever a backend loads or is probed. */
static const scomm_param_t scomm_backend_params[] = {
    {.name = "SCOMM_DEVICE_CHUNK", .defval = "4m", .type = SCOMM_PARAM_SIZE,
     .min = 4096, .max = (int64_t)1 << 30,
     .help = "chunk of the pipelined staging of a blocking collective on "
             "device buffers of a native communicator under a device hint "
             "(bytes of each per-rank block; two pinned buffers; "
             "docs/device.md)"},
    {.name = "SCOMM_DEVICE_IPC", .defval = "auto", .type = SCOMM_PARAM_ENUM,
     .values = "auto,0,1",
     .help = "CUDA IPC (device-to-device copies) for the blocking "
             "all_gather, broadcast and all_to_all on device buffers between "
             "the ranks of one host under the hint SCOMM_MEM_CUDA, and for "
             "blocking sends of CUDA memory above the eager limit to a rank "
             "of this host (its receiver's buffer CUDA memory too); auto: "
             "where every rank can, else staged; 0: always staged; 1: as "
             "auto, with a warning naming why when it falls back "
             "(docs/device.md)"},
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
                          "records completion events with (default: the "
                          "one libnccl links, one already loaded, then "
                          "libcudart.so.13/.12/.11.0); none: no events, "
                          "calls count as complete when enqueued"),
    SCOMM_BACKEND_LIB_ROW("SCOMM_HIPRT_LIBRARY",
                          "path of the HIP runtime of the rccl backend "
                          "(default: librccl's, then libamdhip64.so.7/.6/"
                          ".5); none: no events"),
    SCOMM_BACKEND_LIB_ROW("SCOMM_ACLRT_LIBRARY",
                          "path of the Ascend ACL runtime of the hccl "
                          "backend (default: libascendcl.so); none: no "
                          "events"),
    SCOMM_BACKEND_LIB_ROW("SCOMM_CNRT_LIBRARY",
                          "path of the Cambricon runtime of the cncl "
                          "backend (default: libcnrt.so); none: no events"),
    SCOMM_BACKEND_LIB_ROW("SCOMM_XPURT_LIBRARY",
                          "path of the Kunlunxin runtime of the bkcl "
                          "backend (default: libxpurt.so); none: no "
                          "events"),
};

static const scomm_vendor_ops_t *const scomm_vendors[] = {
    &scomm_vendor_nccl_ops,
    &scomm_vendor_rccl_ops,
    &scomm_vendor_hccl_ops,
    &scomm_vendor_cncl_ops,
    &scomm_vendor_bkcl_ops,
};

#define SCOMM_NVENDORS SCOMM_ARRAY_SIZE(scomm_vendors)

/* A library loaded once per process (invariant 5 of backend.h). */
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
            v->dl        = dl;
            lib->sym     = v->sym;
            lib->version = v->version;
            snprintf(lib->used, sizeof(lib->used), "%s", used);
        }
        /* A library that lacks entry points stays open: dlclose of a
         * vendor library is not safe (invariant 4). */
    } else {
        v->sym     = lib->sym;
        v->dl      = lib->dl;
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

/* ---- creation ------------------------------------------------------------ */

static void scomm_vendor_free(scomm_vendor_t *v)
{
    size_t i;

    /* v->sym is the process-wide table (invariant 5 of backend.h). */
    if (v->ring != NULL) {
        for (i = 0; i < SCOMM_VENDOR_RING; i++) {
            if ((v->rt != NULL) && (v->ring[i].ev != NULL)) {
                scomm_devrt_event_destroy(v->rt, v->ring[i].ev);
            }
        }
        free(v->ring);
    }
    pthread_mutex_destroy(&v->poll_lock);
    free(v);
}

static scomm_vendor_t *scomm_vendor_new(scomm_comm_t *comm)
{
    scomm_vendor_t *v = calloc(1, sizeof(*v));

    if (v == NULL) {
        return NULL;
    }
    v->ring = calloc(SCOMM_VENDOR_RING, sizeof(*v->ring));
    if (v->ring == NULL) {
        free(v);
        return NULL;
    }
    pthread_mutex_init(&v->poll_lock, NULL);
    v->comm   = comm;
    v->rank   = comm->rank;
    v->size   = comm->size;
    v->device = comm->local_rank;
    atomic_store(&v->state, SCOMM_VENDOR_IDLE);
    return v;
}

/* The device runtime of v's streams (devrt.h), or none: then calls count
 * as complete once enqueued, as NCCL's own calls promise. */
static void scomm_vendor_find_rt(scomm_vendor_t *v)
{
    char err[256] = "";

    v->rt = scomm_devrt_get(v->ops->rt_kind, v->dl, err, sizeof(err));
    if (v->rt == NULL) {
        scomm_warn(SCOMM_SUB_INIT, "backend %s: %s: no completion events, "
                   "no watchdog deadline, scomm_comm_synchronize returns "
                   "at once", v->ops->name, err);
    }
}

scomm_status_t scomm_backend_comm_init(scomm_comm_t *comm, const char *name,
                                       scomm_comm_t *err_comm)
{
    char msg[SCOMM_ERRMSG_MAX] = "", err[256] = "";
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
    v = scomm_vendor_new(comm);
    if (v == NULL) {
        mine = SCOMM_ERR_NO_MEMORY;
        snprintf(msg, sizeof(msg), "out of memory");
    } else if (scomm_vendor_load(idx, v, msg, sizeof(msg)) != 0) {
        mine = SCOMM_ERR_UNSUPPORTED;
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
        mine = scomm_vendor_settle(comm, v, "scomm_init", 1);
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
    idbuf = NULL;
    scomm_vendor_find_rt(v);
    status = scomm_vendor_wd_add(v, err, sizeof(err));
    if (status != SCOMM_OK) {
        /* Only this rank knows: fail the world so the others stop. */
        snprintf(msg, sizeof(msg), "backend %s: rank %d: %s", name,
                 comm->rank, err);
        scomm_world_fail(comm->world, status, comm->world->rank, "%s", msg);
        scomm_vendor_kill(v);
        goto err;
    }
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

    child->dev_stream = parent->dev_stream;
    child->dev_hint   = parent->dev_hint;
    if (parent->vendor == NULL) {
        return SCOMM_OK; /* a native parent has native children */
    }
    status = scomm_backend_comm_init(child, parent->vendor->ops->name,
                                     parent);
    if (status == SCOMM_OK) {
        atomic_store(&child->vendor->stream,
                     atomic_load(&parent->vendor->stream));
    }
    return status;
}

/* ---- release ------------------------------------------------------------- */

void scomm_backend_comm_abort(scomm_comm_t *comm)
{
    if (comm->vendor != NULL) {
        scomm_vendor_kill(comm->vendor);
    }
}

void scomm_backend_comm_release(scomm_comm_t *comm)
{
    scomm_vendor_t *v = comm->vendor;
    int s;

    scomm_dev_stage_free(comm);
    if (v == NULL) {
        return;
    }
    scomm_vendor_wd_remove(v); /* invariant 2 */
    s = atomic_exchange(&v->state, SCOMM_VENDOR_DEAD);
    if (s != SCOMM_VENDOR_DEAD) {
        pthread_mutex_lock(&v->poll_lock);
        if (atomic_load(&comm->world->fault.status) != 0) {
            v->ops->abort(v); /* peers may be gone: never wait for them */
        } else {
            v->ops->destroy(v);
        }
        pthread_mutex_unlock(&v->poll_lock);
    }
    comm->vendor       = NULL;
    comm->coll_offload = NULL;
    scomm_vendor_free(v);
}

/* ---- public API ---------------------------------------------------------- */

scomm_status_t scomm_comm_set_stream(scomm_comm_t *comm, void *stream)
{
    scomm_status_t status = scomm_comm_check(comm, "scomm_comm_set_stream");

    if (status != SCOMM_OK) {
        return status;
    }
    if (comm->vendor == NULL) {
        /* device buffers of native calls are ordered after it (stage.c);
         * a caller with a stream has a runtime in the process */
        comm->dev_stream = stream;
        scomm_memkind_probe();
        return SCOMM_OK;
    }
    /* Read once by each call when it enqueues: switching streams between
     * calls is a store, no lock and no vendor call. */
    atomic_store(&comm->vendor->stream, stream);
    comm->dev_stream = stream;
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
    const scomm_devrt_t *rt;
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
        snprintf(out->runtime, sizeof(out->runtime), "-");
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
    rt = scomm_devrt_get(ops->rt_kind, v.dl, msg, sizeof(msg));
    if (rt != NULL) {
        scomm_devrt_describe(rt, out->runtime, sizeof(out->runtime));
    } else {
        snprintf(out->runtime, sizeof(out->runtime), "none: %s", msg);
    }
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
        scomm_memkind_probe(); /* a runtime loaded before scomm_init */
        return SCOMM_OK;
    }
    /* a vendor's runtime is found through its library first (devrt.h):
     * the device-buffer probe (stage.h) comes after */
    pthread_mutex_lock(&w->lock);
    status = scomm_backend_comm_init(comm, w->backend, comm);
    pthread_mutex_unlock(&w->lock);
    scomm_memkind_probe();
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
