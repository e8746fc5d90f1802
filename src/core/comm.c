/*
 * comm.c - communicator lifecycle: the world, its transports, and the
 * modules' set-up and teardown.
 *
 *   scomm_init():  config -> modules' world_config (presets) -> launcher
 *                  env -> world -> transports init (listen, create shm) ->
 *                  bootstrap exchange -> choose a transport per peer ->
 *                  connect -> world communicator -> modules' world_up
 *                  (telemetry, a vendor communicator)
 *   scomm_comm_split():  allgather (color, key) -> members -> new ctx id
 *                  -> modules' comm_split
 *   scomm_comm_destroy(): modules' comm_stop, comm_release, comm_gone (in
 *                  reverse list order); the world goes when its last
 *                  communicator does
 *
 * Invariants:
 *  1. Every API entry validates its arguments before touching anything and
 *     names the bad argument; outputs are written only on success.
 *  2. A destroyed communicator keeps its (small) struct, marked dead, so a
 *     late call gets SCOMM_ERR_INVALID_USAGE instead of a use-after-free.
 *  3. The world lock is held by every API call that touches world state;
 *     scomm_comm_abort takes no lock (it must work while another thread
 *     sleeps inside a wait).
 *  4. Nothing here names a module above core: transports, presets,
 *     telemetry, collectives, overlap and vendor backends are reached
 *     through scomm_modules[] (module.h) and the transports' ops tables.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bootstrap.h"
#include "config.h"
#include "env.h"
#include "module.h"
#include "scomm_int.h"

#define SCOMM_CTX_WORLD 1u

static pthread_mutex_t scomm_grave_lock = PTHREAD_MUTEX_INITIALIZER;
static scomm_list_t scomm_grave = {&scomm_grave, &scomm_grave};


/* ---- validation --------------------------------------------------------- */

scomm_status_t scomm_comm_check(scomm_comm_t *comm, const char *op)
{
    int fault;

    if (comm == NULL) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                               "%s: comm is NULL", op);
    }
    if (comm->magic == SCOMM_COMM_DEAD) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_USAGE,
                               "%s: the communicator was destroyed", op);
    }
    if (comm->magic != SCOMM_COMM_MAGIC) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                               "%s: comm does not point at a communicator",
                               op);
    }
    fault = atomic_load(&comm->world->fault.status);
    if (fault != 0) {
        return scomm_set_error(comm, (scomm_status_t)fault,
                               "%s: communicator failed earlier: %s", op,
                               comm->world->fault.msg);
    }
    return SCOMM_OK;
}

/* name's value (core/config.h) for scomm_init; a bad one fails it. */
static scomm_status_t scomm_init_param(const char *name, scomm_pval_t *v)
{
    char err[SCOMM_ERRMSG_MAX];

    if (scomm_param_get(name, NULL, v, err, sizeof(err)) != SCOMM_OK) {
        scomm_set_thread_error("scomm_init: %s", err);
        return SCOMM_ERR_BAD_CONFIG;
    }
    return SCOMM_OK;
}

/* ---- modules (module.h): set-up in list order, teardown in reverse ---- */

/* The transport module called name that brings its own bootstrap, or
 * NULL. */
static const scomm_tl_ops_t *scomm_own_bootstrap_tl(const char *name)
{
    const scomm_tl_ops_t *tl;
    size_t i;

    for (i = 0; (i < scomm_nmodules) && (name != NULL); i++) {
        tl = scomm_modules[i]->tl;
        if ((tl != NULL) && (tl->caps & SCOMM_TL_CAP_OWN_BOOTSTRAP) &&
            (strcmp(tl->name, name) == 0)) {
            return tl;
        }
    }
    return NULL;
}

/* 1 if some module serves name as a backend (a vendor library). */
static int scomm_module_backend(const char *name)
{
    const scomm_module_t *m;
    const char *b;
    size_t i, k;

    for (i = 0; i < scomm_nmodules; i++) {
        m = scomm_modules[i];
        for (k = 0; (m->backend_name != NULL) &&
                    ((b = m->backend_name(k)) != NULL); k++) {
            if (strcmp(b, name) == 0) {
                return 1;
            }
        }
    }
    return 0;
}

/* ", mock, nccl, ...": the other backends the modules offer, for
 * messages. */
static void scomm_module_backends(char *out, size_t len)
{
    const scomm_module_t *m;
    const char *b;
    size_t i, k, o = 0;

    out[0] = '\0';
    for (i = 0; i < scomm_nmodules; i++) {
        m = scomm_modules[i];
        if ((m->tl != NULL) && (m->tl->caps & SCOMM_TL_CAP_OWN_BOOTSTRAP) &&
            (o < len)) {
            o += (size_t)snprintf(out + o, len - o, ", %s", m->tl->name);
        }
        for (k = 0; (m->backend_name != NULL) &&
                    ((b = m->backend_name(k)) != NULL) && (o < len); k++) {
            o += (size_t)snprintf(out + o, len - o, ", %s", b);
        }
    }
}

/* Run _hook(_arg) of every module that has one, in list order, stopping
 * at the first that fails; *(_status_p) is its status, or SCOMM_OK. */
#define SCOMM_MODULES_SETUP(_hook, _arg, _status_p)                        \
    do {                                                                   \
        size_t _i;                                                         \
                                                                           \
        *(_status_p) = SCOMM_OK;                                           \
        for (_i = 0; (_i < scomm_nmodules) && (*(_status_p) == SCOMM_OK);  \
             _i++) {                                                       \
            if (scomm_modules[_i]->_hook != NULL) {                        \
                *(_status_p) = scomm_modules[_i]->_hook(_arg);             \
            }                                                              \
        }                                                                  \
    } while (0)

/* Run _hook(...) of every module that has one, in reverse list order. */
#define SCOMM_MODULES_TEARDOWN(_hook, ...)                                 \
    do {                                                                   \
        size_t _i;                                                         \
                                                                           \
        for (_i = scomm_nmodules; _i > 0; _i--) {                          \
            if (scomm_modules[_i - 1]->_hook != NULL) {                    \
                scomm_modules[_i - 1]->_hook(__VA_ARGS__);                 \
            }                                                              \
        }                                                                  \
    } while (0)

/* World lock held. On an error, the modules that took the child already
 * release it again. */
static scomm_status_t scomm_modules_comm_split(scomm_comm_t *parent,
                                               scomm_comm_t *child)
{
    scomm_status_t status;
    size_t i, k;

    for (i = 0; i < scomm_nmodules; i++) {
        if ((scomm_modules[i]->comm_split != NULL) &&
            ((status = scomm_modules[i]->comm_split(parent, child)) !=
             SCOMM_OK)) {
            for (k = i; k > 0; k--) {
                if (scomm_modules[k - 1]->comm_release != NULL) {
                    scomm_modules[k - 1]->comm_release(child);
                }
            }
            return status;
        }
    }
    return SCOMM_OK;
}

/* ---- world -------------------------------------------------------------- */

static void scomm_read_boot_id(char *out, size_t len)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

    out[0] = '\0';
    if (f != NULL) {
        if (fgets(out, (int)len, f) == NULL) {
            out[0] = '\0';
        }
        fclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
}

static int scomm_same_host(const scomm_rankinfo_t *a,
                           const scomm_rankinfo_t *b)
{
    return (strcmp(a->hostname, b->hostname) == 0) &&
           (strcmp(a->boot_id, b->boot_id) == 0);
}

static void scomm_world_free(scomm_world_t *w)
{
    scomm_list_t *e, *t;
    scomm_unexp_t *ux;
    uint32_t i;
    int p;

    for (p = 0; p < w->ntl; p++) {
        if (w->tl_ctx[p] != NULL) {
            w->tls[p]->fini(w->tl_ctx[p]);
        }
    }
    if (w->peers != NULL) {
        for (p = 0; p < w->size; p++) {
            scomm_list_for_each_safe(e, t, &w->peers[p].unexp) {
                ux = scomm_container_of(e, scomm_unexp_t, list);
                free(ux->data);
                free(ux);
            }
        }
    }
    for (i = 0; i < w->req_cap; i++) {
        if (w->req_slots[i] != NULL) {
            /* requests never released: what CUDA IPC offers hang on them
             * (before any request goes: a pull is a request too) */
            free(w->req_slots[i]->ipc_offer);
            if (w->req_slots[i]->ipc_pull != NULL) {
                free(w->req_slots[i]->ipc_pull->buf);
            }
        }
    }
    for (i = 0; i < w->req_cap; i++) {
        free(w->req_slots[i]);
    }
    free(w->req_slots);
    free(w->req_gen);
    free(w->req_free);
    if (w->wake_fd >= 0) {
        close(w->wake_fd);
    }
    free(w->peers);
    free(w->info);
    free(w->local_ranks);
    pthread_mutex_destroy(&w->fault.lock);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

static char scomm_tl_names_buf[64];
static pthread_once_t scomm_tl_names_once = PTHREAD_ONCE_INIT;

/* The transports SCOMM_TRANSPORTS may name, from the modules. */
static void scomm_tl_names_build(void)
{
    const scomm_tl_ops_t *tl;
    size_t i, off = 0;

    for (i = 0; i < scomm_nmodules; i++) {
        tl = scomm_modules[i]->tl;
        if ((tl == NULL) || (tl->caps & SCOMM_TL_CAP_OWN_BOOTSTRAP) ||
            (off >= sizeof(scomm_tl_names_buf))) {
            continue;
        }
        off += (size_t)snprintf(scomm_tl_names_buf + off,
                                sizeof(scomm_tl_names_buf) - off, "%s%s",
                                (off > 0) ? "," : "", tl->name);
    }
}

const char *scomm_tl_names(void)
{
    pthread_once(&scomm_tl_names_once, scomm_tl_names_build);
    return scomm_tl_names_buf;
}

static int scomm_tl_allowed(const char *list, const char *name)
{
    char buf[64];
    char *tok, *save = NULL;

    snprintf(buf, sizeof(buf), "%s", list);
    for (tok = strtok_r(buf, ", ", &save); tok != NULL;
         tok = strtok_r(NULL, ", ", &save)) {
        if (strcmp(tok, name) == 0) {
            return 1;
        }
    }
    return 0;
}

static scomm_status_t scomm_world_connect(scomm_world_t *w, uint64_t deadline,
                                          char *err, size_t errlen)
{
    int *peers;
    int p, t, n;
    scomm_status_t status;

    w->local_ranks = calloc((size_t)w->size, sizeof(int));
    peers          = calloc((size_t)w->size, sizeof(int));
    if ((w->local_ranks == NULL) || (peers == NULL)) {
        free(peers);
        snprintf(err, errlen, "out of memory");
        return SCOMM_ERR_NO_MEMORY;
    }
    w->local_size = 0;
    for (p = 0; p < w->size; p++) {
        w->peers[p].local = scomm_same_host(&w->info[p], &w->info[w->rank]);
        if (w->peers[p].local) {
            if (p == w->rank) {
                w->local_rank = w->local_size;
            }
            w->local_ranks[w->local_size++] = p;
        }
    }
    for (p = 0; p < w->size; p++) {
        w->peers[p].tl_idx = -1;
        w->peers[p].tl     = NULL;
        if (p == w->rank) {
            continue;
        }
        for (t = 0; t < w->ntl; t++) {
            if (w->tls[t]->can_reach(w->tl_ctx[t], p)) {
                w->peers[p].tl_idx = t;
                w->peers[p].tl     = w->tls[t];
                break;
            }
        }
        if (w->peers[p].tl == NULL) {
            snprintf(err, errlen, "no transport in SCOMM_TRANSPORTS='%s' can "
                     "reach rank %d on host %s", w->cfg.transports, p,
                     w->info[p].hostname);
            free(peers);
            return SCOMM_ERR_UNSUPPORTED;
        }
    }
    for (t = 0; t < w->ntl; t++) {
        n = 0;
        for (p = 0; p < w->size; p++) {
            if (w->peers[p].tl_idx == t) {
                peers[n++] = p;
            }
        }
        status = w->tls[t]->connect(w->tl_ctx[t], peers, n, deadline);
        if (status != SCOMM_OK) {
            snprintf(err, errlen, "%s", w->fault.msg[0] != '\0'
                                            ? w->fault.msg
                                            : scomm_last_error());
            free(peers);
            return status;
        }
    }
    free(peers);
    return SCOMM_OK;
}

scomm_comm_t *scomm_comm_new(scomm_world_t *w, int rank, int size,
                             uint32_t ctx)
{
    scomm_comm_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->ranks = calloc((size_t)size, sizeof(int));
    if (c->ranks == NULL) {
        free(c);
        return NULL;
    }
    c->magic      = SCOMM_COMM_MAGIC;
    c->world      = w;
    c->rank       = rank;
    c->size       = size;
    c->ctx        = ctx;
    c->timeout_ms = w->cfg.timeout_ms;
    c->cur_op     = "scomm";
    scomm_list_init(&c->grave);
    return c;
}

static void scomm_comm_set_local(scomm_comm_t *c)
{
    scomm_world_t *w = c->world;
    int i;

    c->local_size = 0;
    c->local_rank = 0;
    for (i = 0; i < c->size; i++) {
        if (w->peers[c->ranks[i]].local) {
            if (i == c->rank) {
                c->local_rank = c->local_size;
            }
            c->local_size++;
        }
    }
}

scomm_status_t scomm_init(const scomm_init_opts_t *opts,
                          scomm_comm_t **comm_p)
{
    char err[SCOMM_ERRMSG_MAX] = "";
    char unavail[SCOMM_ERRMSG_MAX] = "";
    uint64_t mask = (opts != NULL) ? opts->field_mask : 0;
    scomm_status_t status;
    scomm_world_t *w = NULL;
    scomm_comm_t *c  = NULL;
    scomm_env_t env;
    scomm_pval_t pv;
    uint64_t deadline;
    const char *v, *backend = NULL, *token = NULL;
    const scomm_tl_ops_t *tl, *own_tl;
    char names[SCOMM_ERRMSG_MAX / 2];
    size_t i;
    int p, port, report = 0; /* a failure is told to the others */

    scomm_log_init();
    if (comm_p == NULL) {
        scomm_set_thread_error("scomm_init: comm_p is NULL");
        return SCOMM_ERR_INVALID_ARG;
    }
    if (scomm_env_detect(&env, err, sizeof(err)) != 0) {
        scomm_set_thread_error("scomm_init: %s", err);
        return SCOMM_ERR_BAD_CONFIG;
    }
    w = calloc(1, sizeof(*w));
    if (w == NULL) {
        scomm_set_thread_error("scomm_init: out of memory");
        return SCOMM_ERR_NO_MEMORY;
    }
    scomm_list_init(&w->ipc_offers);
    scomm_list_init(&w->ipc_replies);
    scomm_list_init(&w->ipc_sends);
    w->wake_fd = -1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->fault.lock, NULL);
    status = scomm_config_load(&w->cfg, err, sizeof(err));
    if (status != SCOMM_OK) {
        scomm_set_thread_error("scomm_init: %s", err);
        goto err_free;
    }
    SCOMM_MODULES_SETUP(world_config, w, &status); /* presets */
    if (status != SCOMM_OK) {
        goto err_free;
    }

    w->rank = (mask & SCOMM_INIT_FIELD_RANK) ? opts->rank : env.rank;
    w->size = (mask & SCOMM_INIT_FIELD_WORLD_SIZE) ? opts->world_size
                                                   : env.size;
    if ((mask & SCOMM_INIT_FIELD_RANK) == 0 && env.rank < 0) {
        status = SCOMM_ERR_BAD_CONFIG;
        scomm_set_thread_error("scomm_init: no rank given: set opts.rank or "
                               "one of SCOMM_RANK, RANK, "
                               "OMPI_COMM_WORLD_RANK, PMI_RANK, "
                               "SLURM_PROCID");
        goto err_free;
    }
    if ((w->size < 1) || (w->size > SCOMM_WORLD_MAX)) {
        status = (mask & SCOMM_INIT_FIELD_WORLD_SIZE) ? SCOMM_ERR_INVALID_ARG
                                                      : SCOMM_ERR_BAD_CONFIG;
        scomm_set_thread_error("scomm_init: world_size %d is out of range "
                               "1..%d (from %s)", w->size, SCOMM_WORLD_MAX,
                               (mask & SCOMM_INIT_FIELD_WORLD_SIZE)
                                   ? "opts" : env.source);
        goto err_free;
    }
    if ((w->rank < 0) || (w->rank >= w->size)) {
        status = (mask & SCOMM_INIT_FIELD_RANK) ? SCOMM_ERR_INVALID_ARG
                                                : SCOMM_ERR_BAD_CONFIG;
        scomm_set_thread_error("scomm_init: rank %d is out of range 0..%d",
                               w->rank, w->size - 1);
        goto err_free;
    }
    if (mask & SCOMM_INIT_FIELD_TIMEOUT) {
        if (opts->timeout_ms <= 0) {
            status = SCOMM_ERR_INVALID_ARG;
            scomm_set_thread_error("scomm_init: timeout_ms must be > 0 "
                                   "(got %lld)", (long long)opts->timeout_ms);
            goto err_free;
        }
        w->cfg.timeout_ms = opts->timeout_ms;
    }
    v = (mask & SCOMM_INIT_FIELD_MASTER_ADDR) ? opts->master_addr
                                              : env.master_addr;
    if ((mask & SCOMM_INIT_FIELD_MASTER_ADDR) &&
        ((v == NULL) || (*v == '\0'))) {
        status = SCOMM_ERR_INVALID_ARG;
        scomm_set_thread_error("scomm_init: master_addr is NULL or empty");
        goto err_free;
    }
    snprintf(w->master_addr, sizeof(w->master_addr), "%s",
             (v != NULL) ? v : "127.0.0.1");
    port = (mask & SCOMM_INIT_FIELD_MASTER_PORT) ? opts->master_port
                                                 : env.master_port;
    if (port < 0 && !(mask & SCOMM_INIT_FIELD_MASTER_PORT)) {
        port = 29500;
    }
    if ((port < 1) || (port > 65535)) {
        status = SCOMM_ERR_INVALID_ARG;
        scomm_set_thread_error("scomm_init: master_port %d is out of range "
                               "1..65535", port);
        goto err_free;
    }
    w->master_port = port;
    if ((mask & SCOMM_INIT_FIELD_BACKEND) == 0) {
        if ((status = scomm_init_param("SCOMM_BACKEND", &pv)) != SCOMM_OK) {
            goto err_free;
        }
    }
    backend = (mask & SCOMM_INIT_FIELD_BACKEND) ? opts->backend : pv.text;
    if ((backend == NULL) || (*backend == '\0') ||
        (strcmp(backend, "gloo") == 0)) {
        backend = "native";
    }
    /* A transport that is its own backend (mock), or a backend a module
     * serves (vendor libraries, made once the native world is up). */
    own_tl = scomm_own_bootstrap_tl(backend);
    if ((own_tl == NULL) && (strcmp(backend, "native") != 0) &&
        !scomm_module_backend(backend)) {
        scomm_module_backends(names, sizeof(names));
        status = SCOMM_ERR_UNSUPPORTED;
        scomm_set_thread_error("scomm_init: backend '%.64s' is not "
                               "available (available: native, gloo = "
                               "native%s)", backend, names);
        goto err_free;
    }
    snprintf(w->backend, sizeof(w->backend), "%s", backend);
    if ((mask & SCOMM_INIT_FIELD_JOB_TOKEN) == 0) {
        if ((status = scomm_init_param("SCOMM_JOB_TOKEN", &pv)) != SCOMM_OK) {
            goto err_free;
        }
    }
    token = (mask & SCOMM_INIT_FIELD_JOB_TOKEN) ? opts->job_token : pv.text;
    if ((token != NULL) && (strlen(token) >= SCOMM_TOKEN_MAX)) {
        status = SCOMM_ERR_INVALID_ARG;
        scomm_set_thread_error("scomm_init: job token longer than %d bytes",
                               SCOMM_TOKEN_MAX - 1);
        goto err_free;
    }
    snprintf(w->token, sizeof(w->token), "%s", (token != NULL) ? token : "");
    if ((status = scomm_init_param("SCOMM_TEST_PROTOCOL_VERSION", &pv)) !=
        SCOMM_OK) {
        goto err_free;
    }
    if (pv.src != SCOMM_PARAM_SRC_DEFAULT) {
        scomm_boot_proto_version = (uint32_t)pv.i;
    }
    scomm_log_set_rank(w->rank);
    deadline = scomm_deadline_ms(w->cfg.timeout_ms);

    w->info  = calloc((size_t)w->size, sizeof(*w->info));
    w->peers = calloc((size_t)w->size, sizeof(*w->peers));
    if ((w->info == NULL) || (w->peers == NULL)) {
        status = SCOMM_ERR_NO_MEMORY;
        scomm_set_thread_error("scomm_init: out of memory for %d ranks",
                               w->size);
        goto err_free;
    }
    for (p = 0; p < w->size; p++) {
        w->peers[p].rank   = p;
        w->peers[p].tl_idx = -1;
        scomm_list_init(&w->peers[p].posted);
        scomm_list_init(&w->peers[p].unexp);
    }
    w->info[w->rank].rank = w->rank;
    w->info[w->rank].pid  = (int32_t)getpid();
    if (gethostname(w->info[w->rank].hostname, SCOMM_HOST_MAX) != 0) {
        snprintf(w->info[w->rank].hostname, SCOMM_HOST_MAX, "unknown");
    }
    w->info[w->rank].hostname[SCOMM_HOST_MAX - 1] = '\0';
    scomm_read_boot_id(w->info[w->rank].boot_id,
                       sizeof(w->info[w->rank].boot_id));
    if (w->cfg.host_id[0] != '\0') {
        /* SCOMM_HOST_ID stands for the boot id in the host identity, so
         * ranks of one machine can be told apart as hosts (tests). */
        snprintf(w->info[w->rank].boot_id, sizeof(w->info[w->rank].boot_id),
                 "id:%.35s", w->cfg.host_id);
    }
    /* From here until the exchange, a rank that gives up tells the others
     * through rank 0's store (bootstrap.c note 5): they fail at once,
     * naming it, instead of at the bootstrap deadline. */
    report     = 1;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd < 0) {
        status = SCOMM_ERR_SYSTEM;
        scomm_set_thread_error("scomm_init: eventfd: %s", strerror(errno));
        goto err_free;
    }

    /* A transport that brings its own bootstrap (mock: ranks are threads
     * of this process, meeting in-process by master address, port and
     * token) is the only one, and the TCP bootstrap is skipped. */
    if (own_tl != NULL) {
        report    = 0;
        w->tls[0] = own_tl;
        status    = own_tl->init(w, &w->tl_ctx[0]);
        if (status != SCOMM_OK) {
            scomm_set_thread_error("scomm_init: %s backend: %s",
                                   own_tl->name, w->fault.msg);
            goto err_free;
        }
        w->tls[0]->query(w->tl_ctx[0], &w->tl_attr[0]);
        w->ntl = 1;
        goto connect;
    }

    /* The transports SCOMM_TRANSPORTS allows, in the modules' order (shm
     * before tcp: the first that reaches a peer carries its messages). */
    for (i = 0; i < scomm_nmodules; i++) {
        tl = scomm_modules[i]->tl;
        if ((tl == NULL) || (tl->caps & SCOMM_TL_CAP_OWN_BOOTSTRAP) ||
            !scomm_tl_allowed(w->cfg.transports, tl->name)) {
            continue;
        }
        if (w->ntl == SCOMM_MAX_TL) {
            status = SCOMM_ERR_INTERNAL;
            scomm_set_thread_error("scomm_init: more than %d transports "
                                   "(SCOMM_MAX_TL)", SCOMM_MAX_TL);
            goto err_free;
        }
        w->tls[w->ntl] = tl;
        status = tl->init(w, &w->tl_ctx[w->ntl]);
        if (status == SCOMM_ERR_UNSUPPORTED) {
            /* No device or provider on this host: the other transports
             * allowed carry on; if none is left, this is the error. */
            snprintf(unavail, sizeof(unavail), "transport %s: %s",
                     tl->name, scomm_last_error());
            scomm_info(SCOMM_SUB_INIT, "%s", unavail);
            w->tls[w->ntl]    = NULL;
            w->tl_ctx[w->ntl] = NULL;
            continue;
        }
        if (status != SCOMM_OK) {
            scomm_set_thread_error("scomm_init: transport %s: %s",
                                   tl->name, w->fault.msg);
            goto err_free;
        }
        w->tls[w->ntl]->query(w->tl_ctx[w->ntl], &w->tl_attr[w->ntl]);
        w->ntl++;
    }
    if ((w->ntl == 0) && (unavail[0] != '\0')) {
        status = SCOMM_ERR_UNSUPPORTED;
        scomm_set_thread_error("scomm_init: %s", unavail);
        goto err_free;
    }
    if ((w->ntl == 0) && (w->size > 1)) {
        status = SCOMM_ERR_BAD_CONFIG;
        scomm_set_thread_error("scomm_init: SCOMM_TRANSPORTS='%s' names no "
                               "known transport (%s)", w->cfg.transports,
                               scomm_tl_names());
        goto err_free;
    }

    report = 0;
    status = scomm_bootstrap_exchange(w, deadline, err, sizeof(err));
    if (status != SCOMM_OK) {
        scomm_set_thread_error("scomm_init: %s", err);
        scomm_error(SCOMM_SUB_BOOT, "%s", err);
        goto err_free;
    }
connect:
    pthread_mutex_lock(&w->lock);
    status = scomm_world_connect(w, deadline, err, sizeof(err));
    pthread_mutex_unlock(&w->lock);
    if (status != SCOMM_OK) {
        scomm_set_thread_error("scomm_init: connecting: %s", err);
        goto err_free;
    }

    /* Spin politely when ranks outnumber cores or TCP is in play (see
     * progress.c, invariant 3). */
    w->spin_yield = (w->local_size > (int)sysconf(_SC_NPROCESSORS_ONLN));
    for (p = 0; p < w->size; p++) {
        if (scomm_peer_caps(w, p) & SCOMM_TL_CAP_KERNEL_COPY) {
            w->spin_yield = 1;
        }
    }

    c = scomm_comm_new(w, w->rank, w->size, SCOMM_CTX_WORLD);
    if (c == NULL) {
        status = SCOMM_ERR_NO_MEMORY;
        scomm_set_thread_error("scomm_init: out of memory");
        goto err_free;
    }
    for (p = 0; p < w->size; p++) {
        c->ranks[p] = p;
    }
    scomm_comm_set_local(c);
    w->refcount = 1;
    scomm_info(SCOMM_SUB_INIT, "rank %d of %d up (%d local, env from %s, "
               "master %s:%d)", w->rank, w->size, w->local_size, env.source,
               w->master_addr, w->master_port);
    /* Telemetry (env, clock, /metrics server), a vendor communicator
     * (collective, all-or-none), ... */
    SCOMM_MODULES_SETUP(world_up, c, &status);
    if (status != SCOMM_OK) {
        scomm_set_thread_error("scomm_init: %s", c->last_error);
        scomm_comm_destroy(c);
        return status;
    }
    *comm_p = c;
    return SCOMM_OK;

err_free:
    if (report) {
        snprintf(err, sizeof(err), "%s", scomm_last_error());
        scomm_bootstrap_fail(w, deadline, err);
        scomm_set_thread_error("%s", err);
    }
    /* Peers that got as far as connecting learn why we give up, instead of
     * only seeing us leave. */
    if (w->ntl > 0) {
        pthread_mutex_lock(&w->lock);
        if (atomic_load(&w->fault.status) == 0) {
            scomm_world_fail(w, status, w->rank,
                             "rank %d failed to join: %s", w->rank,
                             scomm_last_error());
        }
        scomm_world_notify(w);
        pthread_mutex_unlock(&w->lock);
    }
    scomm_world_free(w);
    return status;
}

scomm_status_t scomm_init_from_env(scomm_comm_t **comm_p)
{
    return scomm_init(NULL, comm_p);
}

/* ---- split -------------------------------------------------------------- */

typedef struct {
    int32_t color;
    int32_t key;
    int32_t rank;
} scomm_split_entry_t;

static int scomm_split_cmp(const void *a, const void *b)
{
    const scomm_split_entry_t *x = a;
    const scomm_split_entry_t *y = b;

    if (x->key != y->key) {
        return (x->key < y->key) ? -1 : 1;
    }
    return (x->rank < y->rank) ? -1 : (x->rank > y->rank);
}

scomm_status_t scomm_comm_split(scomm_comm_t *comm, int32_t color,
                                int32_t key, scomm_comm_t **sub_p)
{
    scomm_split_entry_t *all = NULL;
    scomm_status_t status;
    scomm_world_t *w;
    scomm_comm_t *c = NULL;
    uint64_t h;
    int i, step, n, me = -1, right, left;

    status = scomm_comm_check(comm, "scomm_comm_split");
    if (status != SCOMM_OK) {
        return status;
    }
    if (sub_p == NULL) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "scomm_comm_split: sub_p is NULL");
    }
    if (color < SCOMM_SPLIT_NOCOLOR) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "scomm_comm_split: color %d is negative (use "
                               "SCOMM_SPLIT_NOCOLOR to opt out)", (int)color);
    }
    w = comm->world;
    pthread_mutex_lock(&w->lock);
    comm->cur_op = "scomm_comm_split";
    all          = calloc((size_t)comm->size, sizeof(*all));
    if (all == NULL) {
        status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                 "scomm_comm_split: out of memory");
        goto out;
    }
    all[comm->rank].color = color;
    all[comm->rank].key   = key;
    all[comm->rank].rank  = comm->rank;
    /* Ring allgather of the (color, key, rank) triples. */
    right = (comm->rank + 1) % comm->size;
    left  = (comm->rank - 1 + comm->size) % comm->size;
    for (step = 0; step < comm->size - 1; step++) {
        int sidx = (comm->rank - step + comm->size) % comm->size;
        int ridx = (comm->rank - step - 1 + comm->size) % comm->size;

        status = scomm_p2p_sendrecv(comm, &all[sidx], sizeof(*all), right,
                                    &all[ridx], sizeof(*all), left,
                                    SCOMM_TAG_SPLIT);
        if (status != SCOMM_OK) {
            goto out;
        }
    }
    h = scomm_hash64(&comm->ctx, sizeof(comm->ctx), comm->nsplit++);
    if (color == SCOMM_SPLIT_NOCOLOR) {
        *sub_p = NULL;
        goto out;
    }
    for (i = 0, n = 0; i < comm->size; i++) {
        if (all[i].color == color) {
            all[n++] = all[i];
        }
    }
    qsort(all, (size_t)n, sizeof(*all), scomm_split_cmp);
    for (i = 0; i < n; i++) {
        if (all[i].rank == comm->rank) {
            me = i;
        }
    }
    /* Context ids 0 and 1 are reserved (none, world). */
    c = scomm_comm_new(w, me, n, (uint32_t)(h | 2u));
    if (c == NULL) {
        status = scomm_set_error(comm, SCOMM_ERR_NO_MEMORY,
                                 "scomm_comm_split: out of memory");
        goto out;
    }
    for (i = 0; i < n; i++) {
        c->ranks[i] = comm->ranks[all[i].rank];
    }
    c->timeout_ms = comm->timeout_ms;
    scomm_comm_set_local(c);
    status = scomm_modules_comm_split(comm, c); /* a vendor child, ... */
    if (status != SCOMM_OK) {
        free(c->ranks);
        free(c);
        goto out;
    }
    w->refcount++;
    *sub_p = c;

out:
    comm->cur_op = "scomm";
    pthread_mutex_unlock(&w->lock);
    free(all);
    return status;
}

/* ---- destroy / abort ---------------------------------------------------- */

scomm_status_t scomm_comm_destroy(scomm_comm_t *comm)
{
    scomm_world_t *w;
    int last;

    if (comm == NULL) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                               "scomm_comm_destroy: comm is NULL");
    }
    if (comm->magic != SCOMM_COMM_MAGIC) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_USAGE,
                               "scomm_comm_destroy: %s",
                               (comm->magic == SCOMM_COMM_DEAD)
                                   ? "the communicator was destroyed already"
                                   : "comm does not point at a "
                                     "communicator");
    }
    w = comm->world;
    /* The modules' teardown, in reverse list order: the overlap engine's
     * progress thread is joined before the vendor communicator it may use
     * goes; under the lock the collectives' state, then the shared
     * memory; after it the metrics (and the /metrics server with the last
     * world). */
    SCOMM_MODULES_TEARDOWN(comm_stop, comm);
    pthread_mutex_lock(&w->lock);
    SCOMM_MODULES_TEARDOWN(comm_release, comm);
    scomm_world_notify(w); /* a fault nobody reported yet */
    last = (--w->refcount == 0);
    pthread_mutex_unlock(&w->lock);
    SCOMM_MODULES_TEARDOWN(comm_gone, comm, last);
    if (last) {
        scomm_world_free(w);
    }
    free(comm->ranks);
    comm->ranks     = NULL;
    comm->world     = NULL;
    comm->magic     = SCOMM_COMM_DEAD;
    pthread_mutex_lock(&scomm_grave_lock);
    scomm_list_push_back(&scomm_grave, &comm->grave);
    pthread_mutex_unlock(&scomm_grave_lock);
    return SCOMM_OK;
}

__attribute__((destructor)) static void scomm_grave_cleanup(void)
{
    scomm_list_t *e;

    pthread_mutex_lock(&scomm_grave_lock);
    while ((e = scomm_list_pop_front(&scomm_grave)) != NULL) {
        free(scomm_container_of(e, scomm_comm_t, grave));
    }
    pthread_mutex_unlock(&scomm_grave_lock);
}

scomm_status_t scomm_comm_abort(scomm_comm_t *comm)
{
    scomm_world_t *w;

    if ((comm == NULL) || (comm->magic != SCOMM_COMM_MAGIC)) {
        return scomm_set_error(NULL, SCOMM_ERR_INVALID_ARG,
                               "scomm_comm_abort: comm is %s",
                               (comm == NULL) ? "NULL"
                                              : "not a live communicator");
    }
    w = comm->world;
    /* Without the lock: another thread may be inside a wait holding it.
     * world_fail only touches atomics, the fault record (first writer wins)
     * and the transports' best-effort abort notices. */
    scomm_world_fail(w, SCOMM_ERR_ABORTED, w->rank,
                     "communicator aborted by rank %d (scomm_comm_abort)",
                     w->rank);
    SCOMM_MODULES_TEARDOWN(comm_abort, comm); /* the vendor's abort, ... */
    return SCOMM_OK;
}

scomm_status_t scomm_comm_async_error(scomm_comm_t *comm)
{
    return scomm_comm_check(comm, "scomm_comm_async_error");
}

const char *scomm_comm_last_error(scomm_comm_t *comm)
{
    if ((comm == NULL) || (comm->magic != SCOMM_COMM_MAGIC)) {
        return scomm_last_error();
    }
    return comm->last_error;
}

scomm_status_t scomm_comm_set_timeout(scomm_comm_t *comm, int64_t timeout_ms)
{
    scomm_status_t status = scomm_comm_check(comm, "scomm_comm_set_timeout");

    if (status != SCOMM_OK) {
        return status;
    }
    if (timeout_ms <= 0) {
        return scomm_set_error(comm, SCOMM_ERR_INVALID_ARG,
                               "scomm_comm_set_timeout: timeout_ms must be "
                               "> 0 (got %lld)", (long long)timeout_ms);
    }
    comm->timeout_ms = timeout_ms;
    return SCOMM_OK;
}

/* ---- accessors ---------------------------------------------------------- */

#define SCOMM_ALIVE(_c) (((_c) != NULL) && ((_c)->magic == SCOMM_COMM_MAGIC))

int32_t scomm_rank(const scomm_comm_t *comm)
{
    return SCOMM_ALIVE(comm) ? comm->rank : -1;
}

int32_t scomm_size(const scomm_comm_t *comm)
{
    return SCOMM_ALIVE(comm) ? comm->size : -1;
}

int32_t scomm_local_rank(const scomm_comm_t *comm)
{
    return SCOMM_ALIVE(comm) ? comm->local_rank : -1;
}

int32_t scomm_local_size(const scomm_comm_t *comm)
{
    return SCOMM_ALIVE(comm) ? comm->local_size : -1;
}

const char *scomm_peer_transport(const scomm_comm_t *comm, int32_t peer)
{
    const scomm_peer_t *p;

    if (!SCOMM_ALIVE(comm) || (peer < 0) || (peer >= comm->size)) {
        return "invalid";
    }
    p = &comm->world->peers[comm->ranks[peer]];
    return (p->tl == NULL) ? "self" : p->tl->name;
}
