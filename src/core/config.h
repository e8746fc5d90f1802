/*
 * config.h - the configuration registry: every variable scomm reads (its
 * own SCOMM_* knobs and the launchers' RANK, MASTER_ADDR, ...) is one row of
 * some module's table, and the tables are reached through the one module
 * list, scomm_modules[] (core/module.h). `scomm info -c` prints them.
 *
 * Precedence, highest first: the API (scomm_init and scomm_kv options,
 * scomm_config_set) > the environment > the file named by SCOMM_CONF_FILE
 * (lines "SCOMM_NAME=value", '#' comments) > a preset (SCOMM_PRESET,
 * topo/preset.c, as a scomm_param_layer_t) > the row's default.
 *
 * Invariants:
 *  1. Only config.c calls getenv() for a variable; modules read typed
 *     values with scomm_param_get() at the moments they always have (world
 *     init, endpoint creation, the first log line), never on the data path.
 *  2. A value is parsed and checked here and only here; a bad one is
 *     refused with a message naming where it came from, the variable, the
 *     value and what is accepted ("environment: SCOMM_X='v' is not ...").
 *  3. An empty value counts as unset (the next source down applies).
 *  4. Names are unique across all tables (a unit test checks).
 */
#ifndef SCOMM_CONFIG_H
#define SCOMM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scomm.h"

/* The knobs scomm_init reads into its world (rows with a field). */
typedef struct scomm_config {
    int64_t  timeout_ms;
    char     transports[64];
    char     tcp_ifname[32];
    int64_t  tcp_nsocks;
    uint64_t tcp_eager_max;
    uint64_t tcp_sockbuf;
    char     ofi_provider[32];
    char     ofi_domain[64];
    uint64_t ofi_eager_max;
    int64_t  ofi_depth;
    uint64_t ofi_rma_chunk;
    uint64_t ofi_rcache_max;
    uint64_t shm_ring_size;
    uint64_t shm_eager_max;
    int64_t  shm_cma;
    int64_t  spin_us;
    int64_t  check;
    int64_t  heartbeat_ms;
    char     algo[32];
    char     host_id[40];
} scomm_config_t;

typedef enum {
    SCOMM_PARAM_INT,    /* decimal integer in min..max */
    SCOMM_PARAM_SIZE,   /* bytes, with k/m/g (powers of 1024), in min..max */
    SCOMM_PARAM_BOOL,   /* 1/0, y/n, yes/no, true/false, on/off */
    SCOMM_PARAM_ENUM,   /* one word of values (any case) */
    SCOMM_PARAM_STRING, /* text of at most max bytes (0: 4095) */
    SCOMM_PARAM_LIST    /* comma list of words of values, at most max bytes */
} scomm_param_type_t;

/* Row flags. */
#define SCOMM_PARAM_F_ENV_ONLY 0x1u /* not in SCOMM_CONF_FILE (per rank) */
#define SCOMM_PARAM_F_CARET    0x2u /* LIST: a leading ^ means "all but" */

typedef struct scomm_param {
    const char        *name;   /* the variable: "SCOMM_TCP_NSOCKS" */
    const char        *defval; /* default as text; "" for none */
    scomm_param_type_t type;
    int64_t            min;    /* INT, SIZE: the accepted range */
    int64_t            max;    /* ... ; STRING, LIST: longest length */
    /* ENUM, LIST: accepted words, "a,b,c"; "x|y" spells one word two ways
     * (the ENUM index counts words, not spellings). */
    const char        *values;
    unsigned           flags;
    const char        *help;
    size_t             offset; /* rows kept in scomm_config_t: the field */
    size_t             size;   /* 0: the module reads the row itself */
} scomm_param_t;

/* For rows kept in scomm_config_t: .offset and .size of field _f. */
#define SCOMM_PARAM_FIELD(_f)                                              \
    .offset = offsetof(scomm_config_t, _f),                                \
    .size   = sizeof(((scomm_config_t *)0)->_f)

/* Where a value came from, lowest precedence first. */
typedef enum {
    SCOMM_PARAM_SRC_DEFAULT = 0,
    SCOMM_PARAM_SRC_PRESET,
    SCOMM_PARAM_SRC_FILE,
    SCOMM_PARAM_SRC_ENV,
    SCOMM_PARAM_SRC_API
} scomm_param_src_t;

/* One value as the registry resolved it. text lives as long as its source:
 * the environment (until the variable is set again), the row, the preset
 * layer, or the conf file's cache (the process). */
typedef struct scomm_pval {
    const char       *text;  /* as given; "" when unset with no default */
    int64_t           i;     /* INT, BOOL (0/1), ENUM (word index) */
    uint64_t          u;     /* SIZE */
    scomm_param_src_t src;
} scomm_pval_t;

/* A preset's values for some knobs: below the conf file, above defaults. */
#define SCOMM_PARAM_LAYER_MAX 16
typedef struct scomm_param_layer {
    char name[48];           /* "preset high-bw", for messages */
    int  n;
    struct {
        const char *param;   /* "SCOMM_KV_CHUNK_SIZE" */
        char        value[32];
    } v[SCOMM_PARAM_LAYER_MAX];
} scomm_param_layer_t;

/* The row called name (the full variable name; "SCOMM_" may be left out),
 * or NULL. */
const scomm_param_t *scomm_param_find(const char *name);
/* Resolve name: environment > SCOMM_CONF_FILE > preset (may be NULL) >
 * default. On a bad value returns SCOMM_ERR_BAD_CONFIG with err naming it
 * and *v holding the default; an unregistered name is SCOMM_ERR_INTERNAL. */
scomm_status_t scomm_param_get(const char *name,
                               const scomm_param_layer_t *preset,
                               scomm_pval_t *v, char *err, size_t errlen);
/* The same, but a bad value is a warning (subsystem env) and *v the
 * default: for knobs whose module carries on with its default. */
void scomm_param_get_or_warn(const char *name, scomm_pval_t *v);
/* Parse value as name's row does (source API, named where in err): for a
 * knob set at run time (scomm_control_set), declared once by its row. */
scomm_status_t scomm_param_check(const char *name, const char *value,
                                 const char *where, scomm_pval_t *v,
                                 char *err, size_t errlen);
/* What p accepts, in words ("an integer in 1..16", "one of thread,
 * inline"); used by error messages and `scomm info -c`. */
void scomm_param_accepts(const scomm_param_t *p, char *buf, size_t len);
/* The closest registered SCOMM_* name to name, or NULL when none is
 * close enough to be a typo of it. */
const char *scomm_param_closest(const char *name);

/* Fill cfg's fields from defaults, the conf file and the environment, and
 * warn (once per process) about SCOMM_* variables no table knows. On a bad
 * value returns SCOMM_ERR_BAD_CONFIG with a message naming the variable. */
scomm_status_t scomm_config_load(scomm_config_t *cfg, char *err,
                                 size_t errlen);
/* Warn once per process about unknown SCOMM_* variables (by name, with the
 * closest known one). For entry points that make no world (KV). */
void scomm_config_check_env(void);
/* Apply the "SCOMM_NAME=value" lines of f ('#' comments, blank lines, the
 * SCOMM_ prefix optional) on top of cfg, stopping at the first bad line;
 * its message names it as name:line. Every registered knob may appear;
 * those with a field in cfg are applied. Does not close f. The parser of
 * SCOMM_CONF_FILE, also used by tests/fuzz/fuzz_config.c. */
scomm_status_t scomm_config_parse_stream(scomm_config_t *cfg, FILE *f,
                                         const char *name, char *err,
                                         size_t errlen);
/* Set one knob with a field in cfg by name from text (source "api"). */
scomm_status_t scomm_config_set(scomm_config_t *cfg, const char *name,
                                const char *value, char *err, size_t errlen);

#endif /* SCOMM_CONFIG_H */
