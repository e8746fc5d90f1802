/*
 * config.h - every tunable knob, declared once in a table (name, default as
 * text, help, type, offset) and read once at communicator creation.
 *
 * Precedence: scomm_init() options > SCOMM_* environment > the file named by
 * SCOMM_CONF_FILE (lines "SCOMM_NAME=value", '#' comments) > defaults.
 * No getenv() happens on the data path.
 */
#ifndef SCOMM_CONFIG_H
#define SCOMM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scomm.h"

typedef struct scomm_config {
    int64_t  timeout_ms;
    char     transports[64];
    char     tcp_ifname[32];
    int64_t  tcp_nsocks;
    uint64_t tcp_eager_max;
    uint64_t tcp_sockbuf;
    uint64_t shm_ring_size;
    uint64_t shm_eager_max;
    int64_t  shm_cma;
    int64_t  spin_us;
    int64_t  check;
    int64_t  heartbeat_ms;
    char     algo[32];
    char     host_id[40];
    /* RDMA verbs transport (src/transport/rdma.c, docs/rdma.md) */
    char     rdma_device[32];
    int64_t  rdma_port;
    int64_t  rdma_gid_index;
    uint64_t rdma_eager_max;
    int64_t  rdma_rq_depth;
    uint64_t rdma_pin_max;
    int64_t  rdma_regcache;
} scomm_config_t;

typedef enum {
    SCOMM_PARAM_INT,
    SCOMM_PARAM_SIZE,
    SCOMM_PARAM_BOOL,
    SCOMM_PARAM_STRING
} scomm_param_type_t;

typedef struct scomm_param {
    const char        *name;     /* without the SCOMM_ prefix */
    const char        *defval;
    const char        *help;
    scomm_param_type_t type;
    size_t             offset;
    size_t             size;     /* for strings: buffer size */
} scomm_param_t;

extern const scomm_param_t scomm_params[];
extern const size_t scomm_nparams;

/* Fill cfg from defaults, the conf file and the environment. On a bad value
 * returns SCOMM_ERR_BAD_CONFIG with a message naming the variable. */
scomm_status_t scomm_config_load(scomm_config_t *cfg, char *err,
                                 size_t errlen);
/* Apply the "SCOMM_NAME=value" lines of f ('#' comments, blank lines, the
 * SCOMM_ prefix optional) on top of cfg, stopping at the first bad line;
 * its message names it as name:line. Does not close f. Used for
 * SCOMM_CONF_FILE, and by tests/fuzz/fuzz_config.c. */
scomm_status_t scomm_config_parse_stream(scomm_config_t *cfg, FILE *f,
                                         const char *name, char *err,
                                         size_t errlen);
/* 1 if knob name (without prefix) holds its built-in default in cfg. */
int scomm_config_is_default(const scomm_config_t *cfg, const char *name);
/* Set one knob by name (without prefix) from text; used by the API too. */
scomm_status_t scomm_config_set(scomm_config_t *cfg, const char *name,
                                const char *value, char *err, size_t errlen);

#endif /* SCOMM_CONFIG_H */
