/*
 * preset.h - transport presets (config/kv_transport_presets.yaml): the
 * seed's KVTransportConfig plus the transport knobs each preset implies.
 *
 * Owned by src/topo (loader, validation, recommendation); read by src/kv
 * (chunking, streams, compression) and the transports. Precedence, highest
 * first: API fields > SCOMM_* environment > SCOMM_CONF_FILE > preset file >
 * built-in defaults (the knobs are rows of the registry, core/config.h).
 */
#ifndef SCOMM_TOPO_PRESET_H
#define SCOMM_TOPO_PRESET_H

#include <stddef.h>
#include <stdint.h>

#define SCOMM_PRESET_NAME_MAX 32

typedef enum {
    SCOMM_PRESET_BACKEND_AUTO = 0,
    SCOMM_PRESET_BACKEND_SHM,
    SCOMM_PRESET_BACKEND_TCP,
    SCOMM_PRESET_BACKEND_RDMA
} scomm_preset_backend_t;

typedef enum {
    SCOMM_PRESET_DTYPE_NATIVE = 0, /* "fp16"/"bf16"/"native": no conversion */
    SCOMM_PRESET_DTYPE_FP8_E4M3,
    SCOMM_PRESET_DTYPE_FP8_E5M2,
    SCOMM_PRESET_DTYPE_INT4
} scomm_preset_dtype_t;

typedef enum {
    SCOMM_PRESET_COMPRESS_NONE = 0,
    SCOMM_PRESET_COMPRESS_LZ4,
    SCOMM_PRESET_COMPRESS_ZSTD
} scomm_preset_compress_t;

typedef struct scomm_preset {
    char                    name[SCOMM_PRESET_NAME_MAX]; /* "high-bw" ... */
    scomm_preset_backend_t  backend;
    scomm_preset_dtype_t    target_dtype;
    size_t                  chunk_size;      /* bytes per KV chunk */
    int                     overlap_streams; /* sockets / streams per peer */
    int                     prefetch_depth;  /* chunks in flight per stream */
    int                     zero_copy;       /* 0/1 */
    scomm_preset_compress_t compression;
    int                     compression_level; /* zstd level; lz4 accel */
    /* Transport knobs the preset implies. */
    int                     tcp_nsocks;      /* SCOMM_TCP_NSOCKS */
    size_t                  tcp_eager_max;   /* eager/rendezvous switch */
    size_t                  shm_chunk;       /* direct collectives' chunk */
} scomm_preset_t;

/*
 * Fill out with the named preset: built-in table first, then the file
 * named by SCOMM_PRESET_FILE if set (or path, when not NULL), then the
 * values the user gave the knobs (SCOMM_KV_CHUNK_SIZE, ...: environment,
 * SCOMM_CONF_FILE), through the registry. On error returns
 * SCOMM_ERR_BAD_CONFIG / SCOMM_ERR_INVALID_ARG with a message (file:line:
 * column for the file) readable by scomm_set_thread_error's reader;
 * SCOMM_ERR_UNSUPPORTED for a file in a build without libyaml.
 * Returns a scomm_status_t value as int to keep this header light.
 */
int scomm_preset_get(const char *name, const char *path, scomm_preset_t *out);

/* ---- beyond the contract: the loader's pieces, for the CLI and tests ---- */

#define SCOMM_PRESET_SET_MAX   32
#define SCOMM_PRESET_DESC_MAX  160
#define SCOMM_PRESET_HW_MAX    6
#define SCOMM_PRESET_HWLEN_MAX 96
#define SCOMM_PRESET_DEFAULT   "high-bw"

/* One preset with what the file says about it. */
typedef struct scomm_preset_entry {
    scomm_preset_t preset;
    char           description[SCOMM_PRESET_DESC_MAX];
    char           hardware[SCOMM_PRESET_HW_MAX][SCOMM_PRESET_HWLEN_MAX];
    int            nhardware;
    int            line;       /* line in the file; 0 for a built-in */
} scomm_preset_entry_t;

/* Built-ins first, then the file's presets (replacing same names). */
typedef struct scomm_preset_set {
    scomm_preset_entry_t entry[SCOMM_PRESET_SET_MAX];
    int                  n;
} scomm_preset_set_t;

/* The built-in table (the same values as config/kv_transport_presets.yaml;
 * a unit test keeps the two equal). */
void scomm_preset_builtins(scomm_preset_set_t *set);
/* Parse YAML text (len bytes, need not be NUL-terminated) named fname in
 * messages, on top of set. On error returns SCOMM_ERR_BAD_CONFIG and err
 * holds "fname:line:column: what"; set is then partly updated. Without
 * libyaml: SCOMM_ERR_UNSUPPORTED, err naming the package, set untouched. */
int scomm_preset_parse(const char *text, size_t len, const char *fname,
                       scomm_preset_set_t *set, char *err, size_t errlen);
/* Built-ins, then path (or $SCOMM_PRESET_FILE when path is NULL). */
int scomm_preset_load(const char *path, scomm_preset_set_t *set, char *err,
                      size_t errlen);
/* The entry named name, or NULL. */
const scomm_preset_entry_t *scomm_preset_find(const scomm_preset_set_t *set,
                                              const char *name);
/* Apply the values the user gave SCOMM_KV_* / SCOMM_TCP_NSOCKS / ...
 * (environment, SCOMM_CONF_FILE; the registry resolves them with p as its
 * preset layer). On a bad value p is unchanged and err names it. */
int scomm_preset_apply_env(scomm_preset_t *p, char *err, size_t errlen);
/* Check ranges (the file's and the environment's rules). 0 when valid. */
int scomm_preset_check(const scomm_preset_t *p, char *err, size_t errlen);
/* YAML text of one preset as the file would hold it; returns the length
 * snprintf would (truncated to len). */
int scomm_preset_format(const scomm_preset_entry_t *e, char *buf,
                        size_t len);
const char *scomm_preset_backend_name(scomm_preset_backend_t b);
const char *scomm_preset_dtype_name(scomm_preset_dtype_t d);
const char *scomm_preset_compress_name(scomm_preset_compress_t c);

#endif /* SCOMM_TOPO_PRESET_H */
