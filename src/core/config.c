/*
 * config.c - the knob table and its parsers.
 *
 * Invariants:
 *  1. Every knob has exactly one row in scomm_params; names are unique (a unit
 *     test checks) and `scomm info -c` prints this table as documentation.
 *  2. Unknown SCOMM_* environment variables are warned about once (typos),
 *     except the ones read elsewhere (listed in scomm_config_other_vars).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"

#define SCOMM_PARAM_ROW(_name, _def, _type, _field, _help)                 \
    {_name, _def, _help, _type, offsetof(scomm_config_t, _field),          \
     sizeof(((scomm_config_t *)0)->_field)}

const scomm_param_t scomm_params[] = {
    SCOMM_PARAM_ROW("TIMEOUT_MS", "300000", SCOMM_PARAM_INT, timeout_ms,
                    "deadline in ms of every blocking call and wait"),
    SCOMM_PARAM_ROW("TRANSPORTS", "shm,tcp", SCOMM_PARAM_STRING, transports,
                    "transports allowed (shm, rdma, tcp); per peer the "
                    "first that reaches it, in the order shm, rdma, tcp"),
    SCOMM_PARAM_ROW("TCP_IFNAME", "", SCOMM_PARAM_STRING, tcp_ifname,
                    "network interface for TCP; default: the route to "
                    "the master address"),
    SCOMM_PARAM_ROW("TCP_NSOCKS", "2", SCOMM_PARAM_INT, tcp_nsocks,
                    "TCP sockets per peer; large messages are striped "
                    "over all of them"),
    SCOMM_PARAM_ROW("TCP_EAGER_MAX", "64k", SCOMM_PARAM_SIZE, tcp_eager_max,
                    "largest TCP message sent without a rendezvous"),
    SCOMM_PARAM_ROW("TCP_SOCKBUF", "4m", SCOMM_PARAM_SIZE, tcp_sockbuf,
                    "SO_SNDBUF/SO_RCVBUF of TCP sockets (0: kernel default)"),
    SCOMM_PARAM_ROW("SHM_RING_SIZE", "256k", SCOMM_PARAM_SIZE, shm_ring_size,
                    "bytes of each shared-memory ring (one per sender and "
                    "receiver pair)"),
    SCOMM_PARAM_ROW("SHM_EAGER_MAX", "16k", SCOMM_PARAM_SIZE, shm_eager_max,
                    "largest shm message copied through the ring; larger "
                    "ones are read once with process_vm_readv"),
    SCOMM_PARAM_ROW("SHM_CMA", "1", SCOMM_PARAM_BOOL, shm_cma,
                    "use process_vm_readv single-copy for large shm "
                    "messages (falls back to ring fragments when denied)"),
    SCOMM_PARAM_ROW("SPIN_US", "200", SCOMM_PARAM_INT, spin_us,
                    "microseconds a wait polls before it sleeps"),
    SCOMM_PARAM_ROW("CHECK", "0", SCOMM_PARAM_BOOL, check,
                    "compare collective arguments across ranks"),
    SCOMM_PARAM_ROW("HEARTBEAT_MS", "1000", SCOMM_PARAM_INT, heartbeat_ms,
                    "interval of liveness messages while a wait is long"),
    SCOMM_PARAM_ROW("ALGO", "", SCOMM_PARAM_STRING, algo,
                    "force one collective algorithm by name"),
    SCOMM_PARAM_ROW("HOST_ID", "", SCOMM_PARAM_STRING, host_id,
                    "host identity: ranks with the same hostname and "
                    "host id share a host (shm); default: the boot id. "
                    "Different values per rank emulate several hosts on "
                    "one machine (tcp between them)"),
    /* ---- RDMA verbs transport (docs/rdma.md) ---- */
    SCOMM_PARAM_ROW("RDMA_DEVICE", "", SCOMM_PARAM_STRING, rdma_device,
                    "RDMA device name (ibv_devices); default: the first "
                    "with an active port"),
    SCOMM_PARAM_ROW("RDMA_PORT", "1", SCOMM_PARAM_INT, rdma_port,
                    "port number of the RDMA device"),
    SCOMM_PARAM_ROW("RDMA_GID_INDEX", "-1", SCOMM_PARAM_INT, rdma_gid_index,
                    "GID index for RoCE (-1: 0 on RoCE, none on IB)"),
    SCOMM_PARAM_ROW("RDMA_EAGER_MAX", "8k", SCOMM_PARAM_SIZE, rdma_eager_max,
                    "largest RDMA message sent through receive buffers; "
                    "larger ones go by RDMA WRITE after a rendezvous"),
    SCOMM_PARAM_ROW("RDMA_RQ_DEPTH", "64", SCOMM_PARAM_INT, rdma_rq_depth,
                    "receive buffers posted per queue pair (2..1024)"),
    SCOMM_PARAM_ROW("RDMA_PIN_MAX", "1g", SCOMM_PARAM_SIZE, rdma_pin_max,
                    "most bytes the RDMA registration cache keeps pinned"),
    SCOMM_PARAM_ROW("RDMA_REGCACHE", "1", SCOMM_PARAM_INT, rdma_regcache,
                    "RDMA registration cache: 1 caches only memory whose "
                    "end scomm sees (scomm_mem_register, scomm_mem_alloc), "
                    "0 registers every message's buffer, 2 caches all "
                    "(fastest; wrong if the application frees and reuses "
                    "memory it sent from)"),
};

const size_t scomm_nparams = SCOMM_ARRAY_SIZE(scomm_params);

/* SCOMM_* variables read by other parts of the library or the launcher. */
static const char *const scomm_config_other_vars[] = {
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", "MASTER_ADDR",
    "MASTER_PORT", "JOB_TOKEN", "LOG_LEVEL", "LOG_SUBSYS", "LOG_FILE",
    "CONF_FILE", "BACKEND", "SELECTOR_CONFIG", "SYSFS_ROOT", "PRESET",
    "PRESET_FILE", "TRACE", "PROGRESS", "FUSION_BYTES", "CHANNELS",
    "FUSION",
    /* the Python package's loader and tests (python/sagellm_comm) */
    "LIBRARY", "CLI",
    /* vendor backends (src/backend) */
    "NCCL_LIBRARY", "RCCL_LIBRARY", "HCCL_LIBRARY", "CNCL_LIBRARY",
    "BKCL_LIBRARY", "CUDART_LIBRARY", "HIPRT_LIBRARY", NULL
};

static int scomm_parse_bool(const char *v, int64_t *out)
{
    if ((strcasecmp(v, "1") == 0) || (strcasecmp(v, "y") == 0) ||
        (strcasecmp(v, "yes") == 0) || (strcasecmp(v, "true") == 0) ||
        (strcasecmp(v, "on") == 0)) {
        *out = 1;
        return 0;
    }
    if ((strcasecmp(v, "0") == 0) || (strcasecmp(v, "n") == 0) ||
        (strcasecmp(v, "no") == 0) || (strcasecmp(v, "false") == 0) ||
        (strcasecmp(v, "off") == 0)) {
        *out = 0;
        return 0;
    }
    return -1;
}

static scomm_status_t scomm_param_apply(scomm_config_t *cfg,
                                        const scomm_param_t *p,
                                        const char *value, const char *where,
                                        char *err, size_t errlen)
{
    char *field = (char *)cfg + p->offset;
    char *end   = NULL;
    long long iv;
    uint64_t sv;
    int64_t bv;

    switch (p->type) {
    case SCOMM_PARAM_INT:
        errno = 0;
        iv    = strtoll(value, &end, 10);
        if ((errno != 0) || (end == value) || (*end != '\0')) {
            snprintf(err, errlen, "%s: SCOMM_%s='%s' is not an integer",
                     where, p->name, value);
            return SCOMM_ERR_BAD_CONFIG;
        }
        *(int64_t *)field = iv;
        break;
    case SCOMM_PARAM_SIZE:
        if (scomm_parse_size(value, &sv) != 0) {
            snprintf(err, errlen,
                     "%s: SCOMM_%s='%s' is not a size (e.g. 4096, 64k, 4m)",
                     where, p->name, value);
            return SCOMM_ERR_BAD_CONFIG;
        }
        *(uint64_t *)field = sv;
        break;
    case SCOMM_PARAM_BOOL:
        if (scomm_parse_bool(value, &bv) != 0) {
            snprintf(err, errlen,
                     "%s: SCOMM_%s='%s' is not a boolean (1/0, y/n)", where,
                     p->name, value);
            return SCOMM_ERR_BAD_CONFIG;
        }
        *(int64_t *)field = bv;
        break;
    case SCOMM_PARAM_STRING:
        if (strlen(value) >= p->size) {
            snprintf(err, errlen, "%s: SCOMM_%s is longer than %zu bytes",
                     where, p->name, p->size - 1);
            return SCOMM_ERR_BAD_CONFIG;
        }
        snprintf(field, p->size, "%s", value);
        break;
    }
    return SCOMM_OK;
}

static const scomm_param_t *scomm_param_find(const char *name)
{
    size_t i;

    for (i = 0; i < scomm_nparams; i++) {
        if (strcmp(scomm_params[i].name, name) == 0) {
            return &scomm_params[i];
        }
    }
    return NULL;
}

int scomm_config_is_default(const scomm_config_t *cfg, const char *name)
{
    const scomm_param_t *p = scomm_param_find(name);
    scomm_config_t def;
    char err[128];

    if ((p == NULL) ||
        (scomm_param_apply(&def, p, p->defval, "default", err,
                           sizeof(err)) != SCOMM_OK)) {
        return 0;
    }
    return memcmp((const char *)cfg + p->offset,
                  (const char *)&def + p->offset,
                  (p->type == SCOMM_PARAM_STRING) ? p->size :
                  sizeof(int64_t)) == 0;
}

scomm_status_t scomm_config_set(scomm_config_t *cfg, const char *name,
                                const char *value, char *err, size_t errlen)
{
    const scomm_param_t *p = scomm_param_find(name);

    if (p == NULL) {
        snprintf(err, errlen, "unknown parameter '%s'", name);
        return SCOMM_ERR_INVALID_ARG;
    }
    return scomm_param_apply(cfg, p, value, "api", err, errlen);
}

scomm_status_t scomm_config_parse_stream(scomm_config_t *cfg, FILE *f,
                                         const char *name, char *err,
                                         size_t errlen)
{
    char *line = NULL, where[600];
    size_t cap = 0;
    ssize_t got;
    const scomm_param_t *p;
    scomm_status_t status = SCOMM_OK;
    char *key, *val, *eq, *e;
    int lineno = 0;

    /* getline, not fgets: a long line must not be split, or its tail would
     * be read as a setting of its own. */
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (got > 4096) {
            snprintf(err, errlen, "%s:%d:1: line longer than 4096 bytes",
                     name, lineno);
            status = SCOMM_ERR_BAD_CONFIG;
            break;
        }
        key = line;
        while (isspace((unsigned char)*key)) {
            key++;
        }
        if ((*key == '#') || (*key == '\0')) {
            continue;
        }
        e = key + strlen(key);
        while ((e > key) && isspace((unsigned char)e[-1])) {
            *--e = '\0';
        }
        eq = strchr(key, '=');
        snprintf(where, sizeof(where), "%s:%d", name, lineno);
        if (eq == NULL) {
            snprintf(err, errlen, "%s:1: expected SCOMM_NAME=value", where);
            status = SCOMM_ERR_BAD_CONFIG;
            break;
        }
        *eq = '\0';
        val = eq + 1;
        if (strncmp(key, "SCOMM_", 6) == 0) {
            key += 6;
        }
        p = scomm_param_find(key);
        if (p == NULL) {
            snprintf(err, errlen, "%s:1: unknown parameter SCOMM_%s", where,
                     key);
            status = SCOMM_ERR_BAD_CONFIG;
            break;
        }
        status = scomm_param_apply(cfg, p, val, where, err, errlen);
        if (status != SCOMM_OK) {
            break;
        }
    }
    free(line);
    return status;
}

static scomm_status_t scomm_config_load_file(scomm_config_t *cfg,
                                             const char *path, char *err,
                                             size_t errlen)
{
    scomm_status_t status;
    FILE *f;

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "SCOMM_CONF_FILE %s: cannot open: %s", path,
                 strerror(errno));
        return SCOMM_ERR_BAD_CONFIG;
    }
    status = scomm_config_parse_stream(cfg, f, path, err, errlen);
    fclose(f);
    return status;
}

/* Once per process (pthread_once: mock ranks are threads calling
 * scomm_init at the same time). */
static void scomm_config_do_warn_unknown(void)
{
    extern char **environ;
    char name[128];
    char **e;
    size_t i, n;
    int known;

    for (e = environ; *e != NULL; e++) {
        if (strncmp(*e, "SCOMM_", 6) != 0) {
            continue;
        }
        n = strcspn(*e + 6, "=");
        if (n >= sizeof(name)) {
            continue;
        }
        memcpy(name, *e + 6, n);
        name[n] = '\0';
        known   = (scomm_param_find(name) != NULL);
        for (i = 0; !known && (scomm_config_other_vars[i] != NULL); i++) {
            known = (strcmp(scomm_config_other_vars[i], name) == 0);
        }
        /* Later subsystems (topology, kv, telemetry, ...) own prefixes. */
        if (!known && (strncmp(name, "TOPO", 4) != 0) &&
            (strncmp(name, "KV_", 3) != 0) &&
            (strncmp(name, "METRICS", 7) != 0) &&
            (strncmp(name, "COLL_", 5) != 0) &&
            (strncmp(name, "MOCK_", 5) != 0) &&
            (strncmp(name, "SHM_COLL", 8) != 0) &&
            (strncmp(name, "TEST", 4) != 0)) {
            scomm_warn(SCOMM_SUB_ENV, "unknown variable SCOMM_%s ignored",
                       name);
        }
    }
}

static void scomm_config_warn_unknown(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, scomm_config_do_warn_unknown);
}

scomm_status_t scomm_config_load(scomm_config_t *cfg, char *err,
                                 size_t errlen)
{
    char name[80];
    const char *v;
    scomm_status_t status;
    size_t i;

    memset(cfg, 0, sizeof(*cfg));
    for (i = 0; i < scomm_nparams; i++) {
        status = scomm_param_apply(cfg, &scomm_params[i],
                                   scomm_params[i].defval, "default", err,
                                   errlen);
        if (status != SCOMM_OK) {
            return SCOMM_ERR_INTERNAL;
        }
    }
    v = getenv("SCOMM_CONF_FILE");
    if ((v != NULL) && (*v != '\0')) {
        status = scomm_config_load_file(cfg, v, err, errlen);
        if (status != SCOMM_OK) {
            return status;
        }
    }
    for (i = 0; i < scomm_nparams; i++) {
        snprintf(name, sizeof(name), "SCOMM_%s", scomm_params[i].name);
        v = getenv(name);
        if (v == NULL) {
            continue;
        }
        status = scomm_param_apply(cfg, &scomm_params[i], v, "environment",
                                   err, errlen);
        if (status != SCOMM_OK) {
            return status;
        }
        if (strcmp(v, scomm_params[i].defval) != 0) {
            scomm_info(SCOMM_SUB_ENV, "%s set to %s", name, v);
        }
    }
    if (cfg->timeout_ms <= 0) {
        snprintf(err, errlen, "SCOMM_TIMEOUT_MS must be > 0 (got %lld)",
                 (long long)cfg->timeout_ms);
        return SCOMM_ERR_BAD_CONFIG;
    }
    if ((cfg->tcp_nsocks < 1) || (cfg->tcp_nsocks > 16)) {
        snprintf(err, errlen, "SCOMM_TCP_NSOCKS must be 1..16 (got %lld)",
                 (long long)cfg->tcp_nsocks);
        return SCOMM_ERR_BAD_CONFIG;
    }
    if ((cfg->shm_ring_size < 16384) || (cfg->shm_ring_size > (1ull << 30))) {
        snprintf(err, errlen,
                 "SCOMM_SHM_RING_SIZE must be between 16k and 1g");
        return SCOMM_ERR_BAD_CONFIG;
    }
    if (cfg->shm_eager_max > cfg->shm_ring_size / 4) {
        cfg->shm_eager_max = cfg->shm_ring_size / 4;
    }
    scomm_config_warn_unknown();
    return SCOMM_OK;
}
