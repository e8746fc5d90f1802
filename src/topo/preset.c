/*
 * preset.c - transport presets: the built-in table, the YAML loader
 * (config/kv_transport_presets.yaml, read with libyaml's document API),
 * range checks, and the preset as a layer of the configuration registry
 * (core/config.h) under the SCOMM_KV_* / SCOMM_TCP_* knobs; and the
 * presets module's world_config hook, which applies SCOMM_PRESET to a
 * world's transport knobs.
 *
 * Invariants:
 *  1. Precedence, highest first: fields the caller sets after
 *     scomm_preset_get() (the API) > SCOMM_* environment > SCOMM_CONF_FILE
 *     > the preset file > the built-in table. Each layer is applied on top
 *     of the one below; the knobs' values go through the registry, which
 *     holds their rows (scomm_presets_params below, SCOMM_TCP_* in tcp.c).
 *  2. Every rejection in a file names file:line:column (1-based) and the
 *     key or value at fault; unknown keys and duplicate keys are errors,
 *     never ignored.
 *  3. A preset in the file replaces the built-in of the same name key by
 *     key: keys it leaves out keep the built-in's values. A new name starts
 *     from the built-in defaults, or from `base: NAME` given first.
 *  4. The walk over the YAML tree is bounded by the schema's fixed depth
 *     and key counts, so aliases cannot make it blow up.
 *  5. Built without libyaml (SCOMM_HAVE_YAML undefined), the built-in table
 *     and the environment still work; a preset file is
 *     SCOMM_ERR_UNSUPPORTED naming the package (core/features.h).
 */
#include "preset.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef SCOMM_HAVE_YAML
#include <yaml.h>
#endif

#include "core/features.h"
#include "core/module.h"
#include "core/scomm_int.h"

#define SCOMM_PRESET_FILE_MAX (1u << 20) /* a preset file is small */

/* Knobs (registry rows, core/config.h). The SCOMM_KV_* rows have no default
 * of their own: below the environment and SCOMM_CONF_FILE comes the
 * preset's value. Words in the order of the enums of preset.h. */
static const scomm_param_t scomm_presets_params[] = {
    {.name = "SCOMM_PRESET", .defval = "", .type = SCOMM_PARAM_STRING,
     .max = SCOMM_PRESET_NAME_MAX - 1,
     .help = "transport preset (scomm presets list): its tcp knobs for "
             "scomm_init, everything for KV endpoints (default there: "
             SCOMM_PRESET_DEFAULT ")"},
    {.name = "SCOMM_PRESET_FILE", .defval = "", .type = SCOMM_PARAM_STRING,
     .help = "YAML file of presets on top of the built-in ones "
             "(config/kv_transport_presets.yaml)"},
    {.name = "SCOMM_KV_BACKEND", .defval = "", .type = SCOMM_PARAM_ENUM,
     .values = "auto,shm,tcp,rdma",
     .help = "KV path; default: the preset's"},
    {.name = "SCOMM_KV_TARGET_DTYPE", .defval = "",
     .type = SCOMM_PARAM_ENUM, .values = "native|fp16|bf16,fp8_e4m3,"
                                         "fp8_e5m2,int4",
     .help = "KV element type on the wire (not native: zero-copy off); "
             "default: the preset's"},
    {.name = "SCOMM_KV_CHUNK_SIZE", .defval = "", .type = SCOMM_PARAM_SIZE,
     .min = 4 << 10, .max = 1 << 30,
     .help = "bytes per KV chunk; default: the preset's"},
    {.name = "SCOMM_KV_OVERLAP_STREAMS", .defval = "",
     .type = SCOMM_PARAM_INT, .min = 1, .max = 64,
     .help = "KV streams (sockets) per peer; default: the preset's"},
    {.name = "SCOMM_KV_PREFETCH_DEPTH", .defval = "",
     .type = SCOMM_PARAM_INT, .min = 1, .max = 64,
     .help = "KV chunks in flight per stream; default: the preset's"},
    {.name = "SCOMM_KV_ZERO_COPY", .defval = "", .type = SCOMM_PARAM_BOOL,
     .help = "send KV straight from the cache; default: the preset's"},
    {.name = "SCOMM_KV_COMPRESSION", .defval = "", .type = SCOMM_PARAM_ENUM,
     .values = "none,lz4,zstd",
     .help = "KV compression; default: the preset's"},
    {.name = "SCOMM_KV_COMPRESSION_LEVEL", .defval = "",
     .type = SCOMM_PARAM_INT, .min = 0, .max = 65537,
     .help = "zstd level (1..22) or lz4 acceleration (1..65537); default: "
             "the preset's, or the codec's when SCOMM_KV_COMPRESSION "
             "changes it"},
    {.name = "SCOMM_KV_SHM_CHUNK", .defval = "", .type = SCOMM_PARAM_SIZE,
     .min = 4 << 10, .max = 64 << 20,
     .help = "chunk of the direct collectives a preset implies; default: "
             "the preset's"},
};

static scomm_status_t scomm_preset_world_config(scomm_world_t *w);

const scomm_module_t scomm_module_presets = {
    .name         = "presets",
    .params       = scomm_presets_params,
    .nparams      = SCOMM_ARRAY_SIZE(scomm_presets_params),
    .world_config = scomm_preset_world_config,
};

typedef struct scomm_preset_def {
    scomm_preset_t preset;
    const char    *description;
    const char    *hardware[SCOMM_PRESET_HW_MAX];
} scomm_preset_def_t;

/* Keep in step with config/kv_transport_presets.yaml (test_topo_preset
 * compares them). */
static const scomm_preset_def_t scomm_preset_table[] = {
    {{"high-bw", SCOMM_PRESET_BACKEND_AUTO, SCOMM_PRESET_DTYPE_NATIVE,
      4u << 20, 4, 4, 1, SCOMM_PRESET_COMPRESS_NONE, 0, 8, 64u << 10,
      1u << 20},
     "bulk KV transfer over fast links: big chunks, many streams, "
     "zero-copy, no conversion",
     {"NVLink / HCCS / xGMI inside a node",
      "InfiniBand HDR/NDR or RoCE v2 >= 100 Gb/s, one NIC per 2 GPUs",
      "PCIe Gen4/Gen5 x16 with the NIC on the accelerator's switch"}},
    {{"low-latency", SCOMM_PRESET_BACKEND_AUTO, SCOMM_PRESET_DTYPE_NATIVE,
      256u << 10, 2, 2, 1, SCOMM_PRESET_COMPRESS_NONE, 0, 2, 256u << 10,
      64u << 10},
     "first token early: small chunks, eager sends up to 256 KiB, "
     "few streams",
     {"ranks on one host (shared memory, same NUMA node)",
      "InfiniBand / RoCE with < 5 us port-to-port latency",
      "25 GbE or better with a short switch path"}},
    {{"low-cost", SCOMM_PRESET_BACKEND_TCP, SCOMM_PRESET_DTYPE_FP8_E4M3,
      1u << 20, 2, 2, 0, SCOMM_PRESET_COMPRESS_LZ4, 1, 4, 64u << 10,
      256u << 10},
     "commodity Ethernet: FP8 KV and LZ4 to cut bytes on the wire, "
     "TCP over several sockets",
     {"1/10/25 GbE TCP hosts without RDMA",
      "cloud VMs and PCIe-only servers",
      "mixed clusters where links differ"}},
};

/* ---- names ---- */

static const char *const scomm_backend_names[] = {"auto", "shm", "tcp",
                                                  "rdma"};
static const char *const scomm_dtype_names[] = {"native", "fp8_e4m3",
                                                "fp8_e5m2", "int4"};
static const char *const scomm_compress_names[] = {"none", "lz4", "zstd"};

const char *scomm_preset_backend_name(scomm_preset_backend_t b)
{
    return ((unsigned)b < SCOMM_ARRAY_SIZE(scomm_backend_names))
               ? scomm_backend_names[b] : "?";
}

const char *scomm_preset_dtype_name(scomm_preset_dtype_t d)
{
    return ((unsigned)d < SCOMM_ARRAY_SIZE(scomm_dtype_names))
               ? scomm_dtype_names[d] : "?";
}

const char *scomm_preset_compress_name(scomm_preset_compress_t c)
{
    return ((unsigned)c < SCOMM_ARRAY_SIZE(scomm_compress_names))
               ? scomm_compress_names[c] : "?";
}

#ifdef SCOMM_HAVE_YAML /* the file's value parsers (the YAML walk below) */
static int scomm_preset_lookup(const char *v, const char *const *names,
                               int n)
{
    int i;

    for (i = 0; i < n; i++) {
        if (strcasecmp(v, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

static int scomm_parse_backend(const char *v)
{
    return scomm_preset_lookup(v, scomm_backend_names,
                               (int)SCOMM_ARRAY_SIZE(scomm_backend_names));
}

static int scomm_parse_dtype(const char *v)
{
    /* fp16 and bf16 are the KV cache's own types: no conversion. */
    if ((strcasecmp(v, "fp16") == 0) || (strcasecmp(v, "bf16") == 0)) {
        return SCOMM_PRESET_DTYPE_NATIVE;
    }
    return scomm_preset_lookup(v, scomm_dtype_names,
                               (int)SCOMM_ARRAY_SIZE(scomm_dtype_names));
}

static int scomm_parse_compress(const char *v)
{
    return scomm_preset_lookup(v, scomm_compress_names,
                               (int)SCOMM_ARRAY_SIZE(scomm_compress_names));
}

/* Decimal integer in [lo, hi]; 0 on success. */
static int scomm_parse_int_range(const char *v, long lo, long hi, int *out)
{
    char *end;
    long x;

    if ((v[0] == '\0') || (v[0] == ' ')) {
        return -1;
    }
    errno = 0;
    x     = strtol(v, &end, 10);
    if ((errno != 0) || (*end != '\0') || (x < lo) || (x > hi)) {
        return -1;
    }
    *out = (int)x;
    return 0;
}

/* Size with an optional k/m/g suffix (also "KiB"...), in [lo, hi]. */
static int scomm_parse_size_range(const char *v, uint64_t lo, uint64_t hi,
                                  size_t *out)
{
    uint64_t x;

    if ((scomm_parse_size(v, &x) != 0) || (x < lo) || (x > hi)) {
        return -1;
    }
    *out = (size_t)x;
    return 0;
}
#endif /* SCOMM_HAVE_YAML */

/* ---- checks shared by the file and the environment ---- */

#define SCOMM_CHUNK_MIN    (4u << 10)
#define SCOMM_CHUNK_MAX    (1u << 30)
#define SCOMM_STREAMS_MAX  64
#define SCOMM_PREFETCH_MAX 64
#define SCOMM_NSOCKS_MAX   16 /* SCOMM_TCP_NSOCKS's range (tcp.c) */
#define SCOMM_EAGER_MAX    (16u << 20)
#define SCOMM_SHMCHUNK_MIN (4u << 10)
#define SCOMM_SHMCHUNK_MAX (64u << 20)

int scomm_preset_check(const scomm_preset_t *p, char *err, size_t errlen)
{
    if ((p->compression == SCOMM_PRESET_COMPRESS_NONE) &&
        (p->compression_level != 0)) {
        snprintf(err, errlen, "preset '%s': compression_level %d without "
                 "compression", p->name, p->compression_level);
        return SCOMM_ERR_BAD_CONFIG;
    }
    if ((p->compression == SCOMM_PRESET_COMPRESS_ZSTD) &&
        ((p->compression_level < 1) || (p->compression_level > 22))) {
        snprintf(err, errlen, "preset '%s': zstd compression_level %d is "
                 "outside 1..22", p->name, p->compression_level);
        return SCOMM_ERR_BAD_CONFIG;
    }
    if ((p->compression == SCOMM_PRESET_COMPRESS_LZ4) &&
        ((p->compression_level < 1) || (p->compression_level > 65537))) {
        snprintf(err, errlen, "preset '%s': lz4 acceleration %d is outside "
                 "1..65537", p->name, p->compression_level);
        return SCOMM_ERR_BAD_CONFIG;
    }
    if (p->zero_copy && (p->target_dtype != SCOMM_PRESET_DTYPE_NATIVE)) {
        snprintf(err, errlen, "preset '%s': zero_copy needs target_dtype "
                 "native (a conversion writes a copy)", p->name);
        return SCOMM_ERR_BAD_CONFIG;
    }
    return SCOMM_OK;
}

/* ---- the set ---- */

static void scomm_entry_from_def(scomm_preset_entry_t *e,
                                 const scomm_preset_def_t *d)
{
    int i;

    memset(e, 0, sizeof(*e));
    e->preset = d->preset;
    snprintf(e->description, sizeof(e->description), "%s", d->description);
    for (i = 0; (i < SCOMM_PRESET_HW_MAX) && (d->hardware[i] != NULL);
         i++) {
        snprintf(e->hardware[i], sizeof(e->hardware[i]), "%s",
                 d->hardware[i]);
    }
    e->nhardware = i;
}

void scomm_preset_builtins(scomm_preset_set_t *set)
{
    size_t i;

    memset(set, 0, sizeof(*set));
    for (i = 0; i < SCOMM_ARRAY_SIZE(scomm_preset_table); i++) {
        scomm_entry_from_def(&set->entry[i], &scomm_preset_table[i]);
    }
    set->n = (int)SCOMM_ARRAY_SIZE(scomm_preset_table);
}

const scomm_preset_entry_t *scomm_preset_find(const scomm_preset_set_t *set,
                                              const char *name)
{
    int i;

    for (i = 0; i < set->n; i++) {
        if (strcmp(set->entry[i].preset.name, name) == 0) {
            return &set->entry[i];
        }
    }
    return NULL;
}

/* ---- the YAML walk ---- */

#ifdef SCOMM_HAVE_YAML

typedef struct scomm_yctx {
    yaml_document_t *doc;
    const char      *fname;
    char            *err;
    size_t           errlen;
} scomm_yctx_t;

static int scomm_yerr(scomm_yctx_t *c, const yaml_node_t *n,
                      const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int scomm_yerr(scomm_yctx_t *c, const yaml_node_t *n,
                      const char *fmt, ...)
{
    char what[384];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s:%lu:%lu: %s", c->fname,
             (unsigned long)n->start_mark.line + 1,
             (unsigned long)n->start_mark.column + 1, what);
    return SCOMM_ERR_BAD_CONFIG;
}

static const char *scomm_yscalar(const yaml_node_t *n)
{
    return (n->type == YAML_SCALAR_NODE) ? (const char *)n->data.scalar.value
                                         : NULL;
}

/* A scalar value, or an error naming key. NUL bytes inside are refused. */
static int scomm_yvalue(scomm_yctx_t *c, const yaml_node_t *v,
                        const char *key, const char **out)
{
    size_t i;

    if ((v->type != YAML_SCALAR_NODE) ||
        (strlen((const char *)v->data.scalar.value) !=
         v->data.scalar.length)) {
        return scomm_yerr(c, v, "'%s' wants a plain value", key);
    }
    *out = (const char *)v->data.scalar.value;
    for (i = 0; i < v->data.scalar.length; i++) {
        /* Escapes such as "\a" or "\e" in a quoted scalar: values are
         * printed to terminals and written back as YAML, so no controls. */
        if ((v->data.scalar.value[i] < 0x20) ||
            (v->data.scalar.value[i] == 0x7f)) {
            return scomm_yerr(c, v, "'%s' holds a control character "
                              "(byte 0x%02x at offset %zu)", key,
                              v->data.scalar.value[i], i);
        }
    }
    return SCOMM_OK;
}

/* Keys of mapping m must be scalars and unique. */
static int scomm_ymap_check(scomm_yctx_t *c, const yaml_node_t *m,
                            const char *what)
{
    yaml_node_pair_t *p, *q;
    const yaml_node_t *k, *k2;

    if (m->type != YAML_MAPPING_NODE) {
        return scomm_yerr(c, m, "%s must be a mapping", what);
    }
    for (p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
         p++) {
        k = yaml_document_get_node(c->doc, p->key);
        if ((k == NULL) || (scomm_yscalar(k) == NULL)) {
            return scomm_yerr(c, (k != NULL) ? k : m,
                              "keys of %s must be plain names", what);
        }
        for (q = m->data.mapping.pairs.start; q < p; q++) {
            k2 = yaml_document_get_node(c->doc, q->key);
            if (strcmp(scomm_yscalar(k2), scomm_yscalar(k)) == 0) {
                return scomm_yerr(c, k, "duplicate key '%s' in %s",
                                  scomm_yscalar(k), what);
            }
        }
    }
    return SCOMM_OK;
}

static int scomm_ytransport(scomm_yctx_t *c, const yaml_node_t *m,
                            scomm_preset_t *p)
{
    yaml_node_pair_t *pair;
    const yaml_node_t *k, *v;
    const char *key, *val = NULL;
    int status;

    status = scomm_ymap_check(c, m, "transport");
    if (status != SCOMM_OK) {
        return status;
    }
    for (pair = m->data.mapping.pairs.start;
         pair < m->data.mapping.pairs.top; pair++) {
        k   = yaml_document_get_node(c->doc, pair->key);
        v   = yaml_document_get_node(c->doc, pair->value);
        key = scomm_yscalar(k);
        status = scomm_yvalue(c, v, key, &val);
        if (status != SCOMM_OK) {
            return status;
        }
        if (strcmp(key, "tcp_nsocks") == 0) {
            if (scomm_parse_int_range(val, 1, SCOMM_NSOCKS_MAX,
                                      &p->tcp_nsocks) != 0) {
                return scomm_yerr(c, v, "tcp_nsocks '%s' is not an integer "
                                  "in 1..%d", val, SCOMM_NSOCKS_MAX);
            }
        } else if (strcmp(key, "tcp_eager_max") == 0) {
            if (scomm_parse_size_range(val, 0, SCOMM_EAGER_MAX,
                                       &p->tcp_eager_max) != 0) {
                return scomm_yerr(c, v, "tcp_eager_max '%s' is not a size "
                                  "in 0..16m", val);
            }
        } else if (strcmp(key, "shm_chunk") == 0) {
            if (scomm_parse_size_range(val, SCOMM_SHMCHUNK_MIN,
                                       SCOMM_SHMCHUNK_MAX,
                                       &p->shm_chunk) != 0) {
                return scomm_yerr(c, v, "shm_chunk '%s' is not a size in "
                                  "4k..64m", val);
            }
        } else {
            return scomm_yerr(c, k, "unknown key '%s' in transport "
                              "(known: tcp_nsocks, tcp_eager_max, "
                              "shm_chunk)", key);
        }
    }
    return SCOMM_OK;
}

static int scomm_yhardware(scomm_yctx_t *c, const yaml_node_t *s,
                           scomm_preset_entry_t *e)
{
    yaml_node_item_t *it;
    const yaml_node_t *v;
    const char *val = NULL;
    int status;

    if (s->type != YAML_SEQUENCE_NODE) {
        return scomm_yerr(c, s, "hardware must be a list of strings");
    }
    e->nhardware = 0;
    for (it = s->data.sequence.items.start; it < s->data.sequence.items.top;
         it++) {
        v = yaml_document_get_node(c->doc, *it);
        status = scomm_yvalue(c, v, "hardware", &val);
        if (status != SCOMM_OK) {
            return status;
        }
        if (e->nhardware == SCOMM_PRESET_HW_MAX) {
            return scomm_yerr(c, v, "more than %d hardware lines",
                              SCOMM_PRESET_HW_MAX);
        }
        if (strlen(val) >= SCOMM_PRESET_HWLEN_MAX) {
            return scomm_yerr(c, v, "hardware line longer than %d bytes",
                              SCOMM_PRESET_HWLEN_MAX - 1);
        }
        snprintf(e->hardware[e->nhardware++], SCOMM_PRESET_HWLEN_MAX, "%s",
                 val);
    }
    return SCOMM_OK;
}

/* One scalar key of a preset. */
static int scomm_ykey(scomm_yctx_t *c, const yaml_node_t *k,
                      const yaml_node_t *v, const char *key,
                      scomm_preset_entry_t *e)
{
    scomm_preset_t *p = &e->preset;
    const char *val = NULL;
    int status, x;

    status = scomm_yvalue(c, v, key, &val);
    if (status != SCOMM_OK) {
        return status;
    }
    if (strcmp(key, "description") == 0) {
        if (strlen(val) >= sizeof(e->description)) {
            return scomm_yerr(c, v, "description longer than %zu bytes",
                              sizeof(e->description) - 1);
        }
        snprintf(e->description, sizeof(e->description), "%s", val);
    } else if (strcmp(key, "preset") == 0) {
        if (strcmp(val, p->name) != 0) {
            return scomm_yerr(c, v, "preset '%s' does not match its key "
                              "'%s'", val, p->name);
        }
    } else if (strcmp(key, "backend") == 0) {
        if ((x = scomm_parse_backend(val)) < 0) {
            return scomm_yerr(c, v, "backend '%s' is not one of auto, shm, "
                              "tcp, rdma", val);
        }
        p->backend = (scomm_preset_backend_t)x;
    } else if (strcmp(key, "target_dtype") == 0) {
        if ((x = scomm_parse_dtype(val)) < 0) {
            return scomm_yerr(c, v, "target_dtype '%s' is not one of "
                              "native, fp16, bf16, fp8_e4m3, fp8_e5m2, "
                              "int4", val);
        }
        p->target_dtype = (scomm_preset_dtype_t)x;
    } else if (strcmp(key, "chunk_size") == 0) {
        if (scomm_parse_size_range(val, SCOMM_CHUNK_MIN, SCOMM_CHUNK_MAX,
                                   &p->chunk_size) != 0) {
            return scomm_yerr(c, v, "chunk_size '%s' is not a size in "
                              "4k..1g", val);
        }
    } else if (strcmp(key, "overlap_streams") == 0) {
        if (scomm_parse_int_range(val, 1, SCOMM_STREAMS_MAX,
                                  &p->overlap_streams) != 0) {
            return scomm_yerr(c, v, "overlap_streams '%s' is not an "
                              "integer in 1..%d", val, SCOMM_STREAMS_MAX);
        }
    } else if (strcmp(key, "prefetch_depth") == 0) {
        if (scomm_parse_int_range(val, 1, SCOMM_PREFETCH_MAX,
                                  &p->prefetch_depth) != 0) {
            return scomm_yerr(c, v, "prefetch_depth '%s' is not an "
                              "integer in 1..%d", val, SCOMM_PREFETCH_MAX);
        }
    } else if (strcmp(key, "zero_copy") == 0) {
        if ((x = scomm_parse_bool(val)) < 0) {
            return scomm_yerr(c, v, "zero_copy '%s' is not true or false",
                              val);
        }
        p->zero_copy = x;
    } else if (strcmp(key, "compression") == 0) {
        if ((x = scomm_parse_compress(val)) < 0) {
            return scomm_yerr(c, v, "compression '%s' is not one of none, "
                              "lz4, zstd", val);
        }
        p->compression = (scomm_preset_compress_t)x;
    } else if (strcmp(key, "compression_level") == 0) {
        if (scomm_parse_int_range(val, 0, 65537,
                                  &p->compression_level) != 0) {
            return scomm_yerr(c, v, "compression_level '%s' is not an "
                              "integer in 0..65537", val);
        }
    } else {
        return scomm_yerr(c, k, "unknown key '%s' in preset '%s' (known: "
                          "base, description, preset, backend, "
                          "target_dtype, chunk_size, overlap_streams, "
                          "prefetch_depth, zero_copy, compression, "
                          "compression_level, transport, hardware)", key,
                          p->name);
    }
    return SCOMM_OK;
}

static int scomm_ypreset(scomm_yctx_t *c, const yaml_node_t *kn,
                         const yaml_node_t *m, scomm_preset_set_t *set)
{
    const char *name = scomm_yscalar(kn);
    const scomm_preset_entry_t *base;
    scomm_preset_entry_t *e;
    yaml_node_pair_t *pair;
    const yaml_node_t *k, *v;
    const char *key, *val = NULL;
    char what[80];
    int status, i;
    size_t n = strlen(name);

    if ((n == 0) || (n >= SCOMM_PRESET_NAME_MAX) ||
        (n != kn->data.scalar.length)) {
        return scomm_yerr(c, kn, "preset name must be 1..%d characters",
                          SCOMM_PRESET_NAME_MAX - 1);
    }
    for (i = 0; name[i] != '\0'; i++) {
        if ((strchr("abcdefghijklmnopqrstuvwxyz0123456789-_.", name[i]) ==
             NULL)) {
            return scomm_yerr(c, kn, "preset name '%s' may hold only a-z, "
                              "0-9, '-', '_', '.'", name);
        }
    }
    snprintf(what, sizeof(what), "preset '%s'", name);
    status = scomm_ymap_check(c, m, what);
    if (status != SCOMM_OK) {
        return status;
    }
    e = (scomm_preset_entry_t *)scomm_preset_find(set, name);
    if (e == NULL) {
        if (set->n == SCOMM_PRESET_SET_MAX) {
            return scomm_yerr(c, kn, "more than %d presets",
                              SCOMM_PRESET_SET_MAX);
        }
        /* A new name starts from the default preset's values. */
        e = &set->entry[set->n++];
        scomm_entry_from_def(e, &scomm_preset_table[0]);
        e->description[0] = '\0';
        e->nhardware      = 0;
        snprintf(e->preset.name, sizeof(e->preset.name), "%s", name);
    }
    e->line = (int)kn->start_mark.line + 1;
    for (pair = m->data.mapping.pairs.start;
         pair < m->data.mapping.pairs.top; pair++) {
        k   = yaml_document_get_node(c->doc, pair->key);
        v   = yaml_document_get_node(c->doc, pair->value);
        key = scomm_yscalar(k);
        if (strcmp(key, "base") == 0) {
            status = scomm_yvalue(c, v, key, &val);
            if (status != SCOMM_OK) {
                return status;
            }
            if (pair != m->data.mapping.pairs.start) {
                return scomm_yerr(c, k, "'base' must be the first key of "
                                  "preset '%s'", name);
            }
            base = scomm_preset_find(set, val);
            if ((base == NULL) || (base == e)) {
                return scomm_yerr(c, v, "base '%s' names no preset defined "
                                  "before '%s'", val, name);
            }
            e->preset = base->preset;
            snprintf(e->preset.name, sizeof(e->preset.name), "%s", name);
        } else if (strcmp(key, "transport") == 0) {
            status = scomm_ytransport(c, v, &e->preset);
        } else if (strcmp(key, "hardware") == 0) {
            status = scomm_yhardware(c, v, e);
        } else {
            status = scomm_ykey(c, k, v, key, e);
        }
        if (status != SCOMM_OK) {
            return status;
        }
    }
    status = scomm_preset_check(&e->preset, what, sizeof(what));
    if (status != SCOMM_OK) {
        return scomm_yerr(c, kn, "%s", what);
    }
    return SCOMM_OK;
}

static int scomm_yroot(scomm_yctx_t *c, const yaml_node_t *root,
                       scomm_preset_set_t *set)
{
    yaml_node_pair_t *pair, *pp;
    const yaml_node_t *k, *v, *pk, *pv;
    const char *key, *val = NULL;
    int status, version;

    status = scomm_ymap_check(c, root, "the file");
    if (status != SCOMM_OK) {
        return status;
    }
    for (pair = root->data.mapping.pairs.start;
         pair < root->data.mapping.pairs.top; pair++) {
        k   = yaml_document_get_node(c->doc, pair->key);
        v   = yaml_document_get_node(c->doc, pair->value);
        key = scomm_yscalar(k);
        if (strcmp(key, "version") == 0) {
            status = scomm_yvalue(c, v, key, &val);
            if (status != SCOMM_OK) {
                return status;
            }
            if ((scomm_parse_int_range(val, 1, 1, &version) != 0)) {
                return scomm_yerr(c, v, "version '%s' is not supported "
                                  "(this library reads version 1)", val);
            }
        } else if (strcmp(key, "presets") == 0) {
            status = scomm_ymap_check(c, v, "presets");
            if (status != SCOMM_OK) {
                return status;
            }
            for (pp = v->data.mapping.pairs.start;
                 pp < v->data.mapping.pairs.top; pp++) {
                pk = yaml_document_get_node(c->doc, pp->key);
                pv = yaml_document_get_node(c->doc, pp->value);
                status = scomm_ypreset(c, pk, pv, set);
                if (status != SCOMM_OK) {
                    return status;
                }
            }
        } else {
            return scomm_yerr(c, k, "unknown top-level key '%s' (known: "
                              "version, presets)", key);
        }
    }
    return SCOMM_OK;
}

int scomm_preset_parse(const char *text, size_t len, const char *fname,
                       scomm_preset_set_t *set, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    scomm_yctx_t c;
    int status;

    if (fname == NULL) {
        fname = "<presets>";
    }
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory for the YAML parser",
                 fname);
        return SCOMM_ERR_NO_MEMORY;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "%s:%lu:%lu: malformed YAML: %s%s%s", fname,
                 (unsigned long)parser.problem_mark.line + 1,
                 (unsigned long)parser.problem_mark.column + 1,
                 (parser.problem != NULL) ? parser.problem : "error",
                 (parser.context != NULL) ? " " : "",
                 (parser.context != NULL) ? parser.context : "");
        yaml_parser_delete(&parser);
        return SCOMM_ERR_BAD_CONFIG;
    }
    c.doc    = &doc;
    c.fname  = fname;
    c.err    = err;
    c.errlen = errlen;
    root     = yaml_document_get_root_node(&doc);
    status   = SCOMM_OK;
    if (root == NULL) {
        snprintf(err, errlen, "%s:1:1: empty file: no presets", fname);
        status = SCOMM_ERR_BAD_CONFIG;
    } else {
        status = scomm_yroot(&c, root, set);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return status;
}
#else /* !SCOMM_HAVE_YAML */
int scomm_preset_parse(const char *text, size_t len, const char *fname,
                       scomm_preset_set_t *set, char *err, size_t errlen)
{
    (void)text;
    (void)len;
    (void)set;
    return scomm_feature_missing(SCOMM_FEATURE_YAML, err, errlen,
                                 "%s: a preset file (YAML; the built-in "
                                 "presets need none)",
                                 (fname != NULL) ? fname : "<presets>");
}
#endif /* SCOMM_HAVE_YAML */

int scomm_preset_load(const char *path, scomm_preset_set_t *set, char *err,
                      size_t errlen)
{
    scomm_pval_t pv;
    char *text;
    size_t n;
    FILE *f;
    int status;

    scomm_preset_builtins(set);
    if (path == NULL) {
        status = scomm_param_get("SCOMM_PRESET_FILE", NULL, &pv, err,
                                 errlen);
        if (status != SCOMM_OK) {
            return status;
        }
        path = pv.text;
    }
    if ((path == NULL) || (path[0] == '\0')) {
        return SCOMM_OK;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "preset file %s: %s", path, strerror(errno));
        return SCOMM_ERR_BAD_CONFIG;
    }
    text = malloc(SCOMM_PRESET_FILE_MAX + 1);
    if (text == NULL) {
        fclose(f);
        snprintf(err, errlen, "preset file %s: out of memory", path);
        return SCOMM_ERR_NO_MEMORY;
    }
    n = fread(text, 1, SCOMM_PRESET_FILE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "preset file %s: read error", path);
        status = SCOMM_ERR_BAD_CONFIG;
    } else if (n > SCOMM_PRESET_FILE_MAX) {
        snprintf(err, errlen, "preset file %s: larger than %u bytes", path,
                 SCOMM_PRESET_FILE_MAX);
        status = SCOMM_ERR_BAD_CONFIG;
    } else {
        status = scomm_preset_parse(text, n, path, set, err, errlen);
    }
    free(text);
    fclose(f);
    return status;
}

/* ---- the registry ---- */

/* The preset's fields under registry knobs, in the order of their rows;
 * the layer and the resolution both walk this table. */
enum {
    SCOMM_PRESET_KNOB_INT,  /* an int field */
    SCOMM_PRESET_KNOB_SIZE, /* a size_t field */
    SCOMM_PRESET_KNOB_WORD  /* an enum field; its word in the row */
};

_Static_assert((sizeof(scomm_preset_backend_t) == sizeof(int)) &&
               (sizeof(scomm_preset_dtype_t) == sizeof(int)) &&
               (sizeof(scomm_preset_compress_t) == sizeof(int)),
               "the preset's enum fields are stored as int");

enum {
    SCOMM_PRESET_K_BACKEND,
    SCOMM_PRESET_K_DTYPE,
    SCOMM_PRESET_K_CHUNK,
    SCOMM_PRESET_K_STREAMS,
    SCOMM_PRESET_K_DEPTH,
    SCOMM_PRESET_K_ZCOPY,
    SCOMM_PRESET_K_COMPRESS,
    SCOMM_PRESET_K_LEVEL,
    SCOMM_PRESET_K_NSOCKS,
    SCOMM_PRESET_K_EAGER,
    SCOMM_PRESET_K_SHMCHUNK,
    SCOMM_PRESET_K_COUNT
};

#define SCOMM_PRESET_KNOB(_k, _param, _field, _kind, _words)               \
    [SCOMM_PRESET_K_##_k] = {_param, offsetof(scomm_preset_t, _field),     \
                             SCOMM_PRESET_KNOB_##_kind, _words}

static const struct {
    const char         *param;
    size_t              off;
    int                 kind;
    const char *const  *words; /* WORD: the enum's names */
} scomm_preset_knobs[SCOMM_PRESET_K_COUNT] = {
    SCOMM_PRESET_KNOB(BACKEND, "SCOMM_KV_BACKEND", backend, WORD,
                      scomm_backend_names),
    SCOMM_PRESET_KNOB(DTYPE, "SCOMM_KV_TARGET_DTYPE", target_dtype, WORD,
                      scomm_dtype_names),
    SCOMM_PRESET_KNOB(CHUNK, "SCOMM_KV_CHUNK_SIZE", chunk_size, SIZE, NULL),
    SCOMM_PRESET_KNOB(STREAMS, "SCOMM_KV_OVERLAP_STREAMS", overlap_streams,
                      INT, NULL),
    SCOMM_PRESET_KNOB(DEPTH, "SCOMM_KV_PREFETCH_DEPTH", prefetch_depth, INT,
                      NULL),
    SCOMM_PRESET_KNOB(ZCOPY, "SCOMM_KV_ZERO_COPY", zero_copy, INT, NULL),
    SCOMM_PRESET_KNOB(COMPRESS, "SCOMM_KV_COMPRESSION", compression, WORD,
                      scomm_compress_names),
    SCOMM_PRESET_KNOB(LEVEL, "SCOMM_KV_COMPRESSION_LEVEL", compression_level,
                      INT, NULL),
    SCOMM_PRESET_KNOB(NSOCKS, "SCOMM_TCP_NSOCKS", tcp_nsocks, INT, NULL),
    SCOMM_PRESET_KNOB(EAGER, "SCOMM_TCP_EAGER_MAX", tcp_eager_max, SIZE, NULL),
    SCOMM_PRESET_KNOB(SHMCHUNK, "SCOMM_KV_SHM_CHUNK", shm_chunk, SIZE, NULL),
};

_Static_assert(SCOMM_ARRAY_SIZE(scomm_preset_knobs) <= SCOMM_PARAM_LAYER_MAX,
               "a preset's knobs fit one registry layer");

/* p as the registry's preset layer: its knobs' values as text. */
static void scomm_preset_layer(const scomm_preset_t *p,
                               scomm_param_layer_t *l)
{
    const char *field;
    size_t i;

    memset(l, 0, sizeof(*l));
    snprintf(l->name, sizeof(l->name), "preset %s", p->name);
    for (i = 0; i < SCOMM_ARRAY_SIZE(scomm_preset_knobs); i++) {
        field = (const char *)p + scomm_preset_knobs[i].off;
        l->v[i].param = scomm_preset_knobs[i].param;
        if (scomm_preset_knobs[i].kind == SCOMM_PRESET_KNOB_SIZE) {
            snprintf(l->v[i].value, sizeof(l->v[i].value), "%zu",
                     *(const size_t *)(const void *)field);
        } else if (scomm_preset_knobs[i].kind == SCOMM_PRESET_KNOB_INT) {
            snprintf(l->v[i].value, sizeof(l->v[i].value), "%d",
                     *(const int *)(const void *)field);
        } else {
            snprintf(l->v[i].value, sizeof(l->v[i].value), "%s",
                     scomm_preset_knobs[i].words
                         [*(const int *)(const void *)field]);
        }
    }
    l->n = (int)SCOMM_ARRAY_SIZE(scomm_preset_knobs);
}

int scomm_preset_apply_env(scomm_preset_t *p, char *err, size_t errlen)
{
    scomm_pval_t v[SCOMM_ARRAY_SIZE(scomm_preset_knobs)];
    scomm_param_layer_t l;
    scomm_preset_t q = *p;
    scomm_status_t status;
    char *field;
    size_t i;

    scomm_preset_layer(p, &l);
    for (i = 0; i < SCOMM_ARRAY_SIZE(scomm_preset_knobs); i++) {
        status = scomm_param_get(scomm_preset_knobs[i].param, &l, &v[i], err,
                                 errlen);
        if (status != SCOMM_OK) {
            return status;
        }
        field = (char *)&q + scomm_preset_knobs[i].off;
        if (scomm_preset_knobs[i].kind == SCOMM_PRESET_KNOB_SIZE) {
            *(size_t *)(void *)field = (size_t)v[i].u;
        } else {
            *(int *)(void *)field = (int)v[i].i;
        }
    }
    /* A conversion the user asks for writes a copy: no zero-copy unless
     * asked for as well; the level of another codec means nothing. */
    if ((v[SCOMM_PRESET_K_DTYPE].src > SCOMM_PARAM_SRC_PRESET) &&
        (q.target_dtype != SCOMM_PRESET_DTYPE_NATIVE) &&
        (v[SCOMM_PRESET_K_ZCOPY].src <= SCOMM_PARAM_SRC_PRESET)) {
        q.zero_copy = 0;
    }
    if ((v[SCOMM_PRESET_K_COMPRESS].src > SCOMM_PARAM_SRC_PRESET) &&
        (q.compression != p->compression) &&
        (v[SCOMM_PRESET_K_LEVEL].src <= SCOMM_PARAM_SRC_PRESET)) {
        q.compression_level = (q.compression == SCOMM_PRESET_COMPRESS_ZSTD)
                                  ? 3
                              : (q.compression == SCOMM_PRESET_COMPRESS_LZ4)
                                  ? 1 : 0;
    }
    status = (scomm_status_t)scomm_preset_check(&q, err, errlen);
    if (status == SCOMM_OK) {
        *p = q;
    }
    return status;
}

/* ---- the contract ---- */

int scomm_preset_get(const char *name, const char *path, scomm_preset_t *out)
{
    const scomm_preset_entry_t *e;
    scomm_preset_set_t *set;
    scomm_pval_t pv;
    scomm_preset_t p;
    char err[512];
    int status, i;

    if (out == NULL) {
        scomm_set_thread_error("scomm_preset_get: out is NULL");
        return SCOMM_ERR_INVALID_ARG;
    }
    if ((name == NULL) || (name[0] == '\0')) {
        status = scomm_param_get("SCOMM_PRESET", NULL, &pv, err,
                                 sizeof(err));
        if (status != SCOMM_OK) {
            scomm_set_thread_error("scomm_preset_get: %s", err);
            return status;
        }
        name = (pv.text[0] != '\0') ? pv.text : SCOMM_PRESET_DEFAULT;
    }
    set = malloc(sizeof(*set));
    if (set == NULL) {
        scomm_set_thread_error("scomm_preset_get: out of memory");
        return SCOMM_ERR_NO_MEMORY;
    }
    err[0] = '\0';
    status = scomm_preset_load(path, set, err, sizeof(err));
    if (status != SCOMM_OK) {
        scomm_set_thread_error("scomm_preset_get: %s", err);
        free(set);
        return status;
    }
    e = scomm_preset_find(set, name);
    if (e == NULL) {
        int off = snprintf(err, sizeof(err), "unknown preset '%s' "
                           "(known:", name);

        for (i = 0; (i < set->n) && (off > 0) &&
                    ((size_t)off < sizeof(err)); i++) {
            off += snprintf(err + off, sizeof(err) - (size_t)off, " %s",
                            set->entry[i].preset.name);
        }
        scomm_set_thread_error("scomm_preset_get: %s)", err);
        free(set);
        return SCOMM_ERR_INVALID_ARG;
    }
    p = e->preset;
    free(set);
    status = scomm_preset_apply_env(&p, err, sizeof(err));
    if (status != SCOMM_OK) {
        scomm_set_thread_error("scomm_preset_get: %s", err);
        return status;
    }
    *out = p;
    return SCOMM_OK;
}

int scomm_preset_format(const scomm_preset_entry_t *e, char *buf,
                        size_t len)
{
    const scomm_preset_t *p = &e->preset;
    int n, i;

    n = snprintf(buf, len,
                 "  %s:\n"
                 "    description: \"%s\"\n"
                 "    backend: %s\n"
                 "    target_dtype: %s\n"
                 "    chunk_size: %zu\n"
                 "    overlap_streams: %d\n"
                 "    prefetch_depth: %d\n"
                 "    zero_copy: %s\n"
                 "    compression: %s\n"
                 "    compression_level: %d\n"
                 "    transport:\n"
                 "      tcp_nsocks: %d\n"
                 "      tcp_eager_max: %zu\n"
                 "      shm_chunk: %zu\n",
                 p->name, e->description, scomm_preset_backend_name(p->backend),
                 scomm_preset_dtype_name(p->target_dtype), p->chunk_size,
                 p->overlap_streams, p->prefetch_depth,
                 p->zero_copy ? "true" : "false",
                 scomm_preset_compress_name(p->compression),
                 p->compression_level, p->tcp_nsocks, p->tcp_eager_max,
                 p->shm_chunk);
    if (e->nhardware > 0) {
        n += snprintf(((size_t)n < len) ? buf + n : NULL,
                      ((size_t)n < len) ? len - (size_t)n : 0,
                      "    hardware:\n");
        for (i = 0; i < e->nhardware; i++) {
            n += snprintf(((size_t)n < len) ? buf + n : NULL,
                          ((size_t)n < len) ? len - (size_t)n : 0,
                          "      - \"%s\"\n", e->hardware[i]);
        }
    }
    return n;
}

/* ---- the world_config hook (core/module.h) ------------------------------- */

/*
 * SCOMM_PRESET names a transport preset (config/kv_transport_presets.yaml):
 * its transport knobs replace the built-in defaults of SCOMM_TCP_NSOCKS and
 * SCOMM_TCP_EAGER_MAX, never a value the user set (environment or
 * SCOMM_CONF_FILE): scomm_preset_get resolves them through the registry
 * with the preset as its layer. Precedence: API > environment/conf file >
 * preset > defaults. Without SCOMM_PRESET nothing changes.
 */
static scomm_status_t scomm_preset_world_config(scomm_world_t *w)
{
    char err[SCOMM_ERRMSG_MAX];
    scomm_pval_t pv;
    scomm_preset_t p;
    int status;

    if (scomm_param_get("SCOMM_PRESET", NULL, &pv, err, sizeof(err)) !=
        SCOMM_OK) {
        scomm_set_thread_error("scomm_init: %s", err);
        return SCOMM_ERR_BAD_CONFIG;
    }
    if (pv.text[0] == '\0') {
        return SCOMM_OK;
    }
    status = scomm_preset_get(pv.text, NULL, &p);
    if (status != SCOMM_OK) {
        char why[SCOMM_ERRMSG_MAX];

        /* scomm_preset_get's message: file:line:column, or the names. */
        snprintf(why, sizeof(why), "%s", scomm_last_error());
        scomm_set_thread_error("scomm_init: SCOMM_PRESET=%.40s: %.400s",
                               pv.text, why);
        return ((status == SCOMM_ERR_NO_MEMORY) ||
                (status == SCOMM_ERR_UNSUPPORTED)) ? (scomm_status_t)status
                                                   : SCOMM_ERR_BAD_CONFIG;
    }
    w->cfg.tcp_nsocks    = p.tcp_nsocks;
    w->cfg.tcp_eager_max = p.tcp_eager_max;
    scomm_info(SCOMM_SUB_INIT, "preset %s: tcp_nsocks %lld, tcp_eager_max "
               "%llu", p.name, (long long)w->cfg.tcp_nsocks,
               (unsigned long long)w->cfg.tcp_eager_max);
    return SCOMM_OK;
}
