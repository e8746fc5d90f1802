/*
 * test_topo_preset.c - presets (src/topo/preset.c): the built-in values,
 * config/kv_transport_presets.yaml equal to them, precedence environment >
 * file > built-ins, and every rejection naming file:line:column.
 *
 * Usage: test_topo_preset PATH/config/kv_transport_presets.yaml
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scomm.h"
#include "st_test.h"
#include "topo/preset.h"

static const char *env_vars[] = {
    "SCOMM_PRESET", "SCOMM_PRESET_FILE", "SCOMM_KV_BACKEND",
    "SCOMM_KV_TARGET_DTYPE", "SCOMM_KV_CHUNK_SIZE",
    "SCOMM_KV_OVERLAP_STREAMS", "SCOMM_KV_PREFETCH_DEPTH",
    "SCOMM_KV_ZERO_COPY", "SCOMM_KV_COMPRESSION",
    "SCOMM_KV_COMPRESSION_LEVEL", "SCOMM_TCP_NSOCKS", "SCOMM_TCP_EAGER_MAX",
    "SCOMM_KV_SHM_CHUNK", NULL
};

static void clear_env(void)
{
    int i;

    for (i = 0; env_vars[i] != NULL; i++) {
        unsetenv(env_vars[i]);
    }
}

static void same_preset(const scomm_preset_t *a, const scomm_preset_t *b)
{
    ST_ASSERT(strcmp(a->name, b->name) == 0);
    ST_ASSERT_EQ(a->backend, b->backend);
    ST_ASSERT_EQ(a->target_dtype, b->target_dtype);
    ST_ASSERT_EQ(a->chunk_size, b->chunk_size);
    ST_ASSERT_EQ(a->overlap_streams, b->overlap_streams);
    ST_ASSERT_EQ(a->prefetch_depth, b->prefetch_depth);
    ST_ASSERT_EQ(a->zero_copy, b->zero_copy);
    ST_ASSERT_EQ(a->compression, b->compression);
    ST_ASSERT_EQ(a->compression_level, b->compression_level);
    ST_ASSERT_EQ(a->tcp_nsocks, b->tcp_nsocks);
    ST_ASSERT_EQ(a->tcp_eager_max, b->tcp_eager_max);
    ST_ASSERT_EQ(a->shm_chunk, b->shm_chunk);
}

/* The values the docs promise, written down here independently. */
static void test_builtins(void)
{
    scomm_preset_t p;

    ST_ASSERT_OK(scomm_preset_get("high-bw", NULL, &p));
    ST_ASSERT_EQ(p.backend, SCOMM_PRESET_BACKEND_AUTO);
    ST_ASSERT_EQ(p.target_dtype, SCOMM_PRESET_DTYPE_NATIVE);
    ST_ASSERT_EQ(p.chunk_size, (size_t)4 * 1024 * 1024);
    ST_ASSERT_EQ(p.overlap_streams, 4);
    ST_ASSERT_EQ(p.prefetch_depth, 4);
    ST_ASSERT_EQ(p.zero_copy, 1);
    ST_ASSERT_EQ(p.compression, SCOMM_PRESET_COMPRESS_NONE);
    ST_ASSERT_EQ(p.tcp_nsocks, 8);
    ST_ASSERT_EQ(p.shm_chunk, (size_t)1024 * 1024);

    ST_ASSERT_OK(scomm_preset_get("low-latency", NULL, &p));
    ST_ASSERT_EQ(p.chunk_size, (size_t)256 * 1024);
    ST_ASSERT_EQ(p.overlap_streams, 2);
    ST_ASSERT_EQ(p.tcp_nsocks, 2);
    ST_ASSERT_EQ(p.tcp_eager_max, (size_t)256 * 1024);
    ST_ASSERT_EQ(p.shm_chunk, (size_t)64 * 1024);

    ST_ASSERT_OK(scomm_preset_get("low-cost", NULL, &p));
    ST_ASSERT_EQ(p.backend, SCOMM_PRESET_BACKEND_TCP);
    ST_ASSERT_EQ(p.target_dtype, SCOMM_PRESET_DTYPE_FP8_E4M3);
    ST_ASSERT_EQ(p.zero_copy, 0);
    ST_ASSERT_EQ(p.compression, SCOMM_PRESET_COMPRESS_LZ4);
    ST_ASSERT_EQ(p.compression_level, 1);
    ST_ASSERT_EQ(p.tcp_nsocks, 4);

    /* NULL name: $SCOMM_PRESET, else high-bw */
    ST_ASSERT_OK(scomm_preset_get(NULL, NULL, &p));
    ST_ASSERT(strcmp(p.name, "high-bw") == 0);
    setenv("SCOMM_PRESET", "low-cost", 1);
    ST_ASSERT_OK(scomm_preset_get(NULL, NULL, &p));
    ST_ASSERT(strcmp(p.name, "low-cost") == 0);
    clear_env();

    ST_ASSERT_STATUS(scomm_preset_get("fastest", NULL, &p),
                     SCOMM_ERR_INVALID_ARG);
    ST_ASSERT(strstr(scomm_last_error(), "unknown preset 'fastest'") !=
              NULL);
    ST_ASSERT(strstr(scomm_last_error(), "low-latency") != NULL);
    ST_ASSERT_STATUS(scomm_preset_get("high-bw", NULL, NULL),
                     SCOMM_ERR_INVALID_ARG);
}

/* The shipped YAML file holds exactly the built-in table. */
static void test_file_matches(const char *path)
{
    scomm_preset_set_t *bi = malloc(sizeof(*bi));
    scomm_preset_set_t *fs = malloc(sizeof(*fs));
    char err[512] = "";
    int i;

    ST_ASSERT(bi != NULL && fs != NULL);
    scomm_preset_builtins(bi);
    ST_ASSERT_EQ(bi->n, 3);
    if (scomm_preset_load(path, fs, err, sizeof(err)) != SCOMM_OK) {
        fprintf(stderr, "%s\n", err);
        ST_ASSERT(0);
    }
    ST_ASSERT_EQ(fs->n, 3);
    for (i = 0; i < 3; i++) {
        same_preset(&bi->entry[i].preset, &fs->entry[i].preset);
        ST_ASSERT(strcmp(bi->entry[i].description,
                         fs->entry[i].description) == 0);
        ST_ASSERT_EQ(bi->entry[i].nhardware, fs->entry[i].nhardware);
        ST_ASSERT(fs->entry[i].line > 0);
    }
    free(bi);
    free(fs);
}

/* Parse text; expect failure with a message containing want. */
static void expect_error(const char *text, const char *want)
{
    scomm_preset_set_t *set = malloc(sizeof(*set));
    char err[512] = "";
    int st;

    ST_ASSERT(set != NULL);
    scomm_preset_builtins(set);
    st = scomm_preset_parse(text, strlen(text), "t.yaml", set, err,
                            sizeof(err));
    if ((st != SCOMM_ERR_BAD_CONFIG) || (strstr(err, want) == NULL)) {
        fprintf(stderr, "for:\n%s\nwanted '%s', got %d '%s'\n", text, want,
                st, err);
        ST_ASSERT(0);
    }
    free(set);
}

static void test_errors(void)
{
    expect_error("version: 1\npresets:\n  high-bw:\n    chunk_sise: 1m\n",
                 "t.yaml:4:5: unknown key 'chunk_sise' in preset 'high-bw'");
    expect_error("presets:\n  high-bw:\n    chunk_size: 3\n",
                 "t.yaml:3:17: chunk_size '3' is not a size in 4k..1g");
    expect_error("presets:\n  high-bw:\n    backend: ucx\n",
                 "t.yaml:3:14: backend 'ucx' is not one of");
    expect_error("presets:\n  high-bw:\n    zero_copy: maybe\n",
                 "t.yaml:3:16: zero_copy 'maybe'");
    expect_error("presets:\n  high-bw:\n    overlap_streams: 0\n",
                 "t.yaml:3:22: overlap_streams '0'");
    expect_error("presets:\n  a:\n    transport:\n      nsocks: 2\n",
                 "t.yaml:4:7: unknown key 'nsocks' in transport");
    expect_error("presets:\n  high-bw:\n    chunk_size: 1m\n"
                 "    chunk_size: 2m\n",
                 "t.yaml:4:5: duplicate key 'chunk_size'");
    expect_error("presets:\n  high-bw: [1, 2\n",
                 "t.yaml:3:1: malformed YAML");
    expect_error("presets:\n  high-bw:\n\tbackend: tcp\n",
                 "t.yaml:3:1: malformed YAML");
    expect_error("presets:\n  x:\n    description: a\n    base: low-cost\n",
                 "t.yaml:4:5: 'base' must be the first key");
    expect_error("presets:\n  x:\n    base: nope\n",
                 "t.yaml:3:11: base 'nope' names no preset");
    expect_error("version: 2\n", "t.yaml:1:10: version '2'");
    expect_error("presets: 3\n", "t.yaml:1:10: presets must be a mapping");
    expect_error("colour: red\n", "t.yaml:1:1: unknown top-level key");
    expect_error("", "t.yaml:1:1: empty file");
    expect_error("presets:\n  high-bw:\n    target_dtype: int4\n",
                 "t.yaml:2:3: preset 'high-bw': zero_copy needs");
    expect_error("presets:\n  high-bw:\n    compression: zstd\n",
                 "zstd compression_level 0 is outside 1..22");
    expect_error("presets:\n  Bad Name:\n    backend: tcp\n",
                 "t.yaml:2:3: preset name 'Bad Name'");
    /* Found by fuzz_presets: a "\a" escape put a BEL in the description,
     * which printed raw and did not parse back. */
    expect_error("presets:\n  high-bw:\n    description: \"x\\ay\"\n",
                 "t.yaml:3:18: 'description' holds a control character "
                 "(byte 0x07 at offset 1)");
}

/* base + override by key; a new preset joins the set. */
static void test_layering(void)
{
    const char *text = "presets:\n"
                       "  high-bw:\n"
                       "    chunk_size: 8MiB\n"
                       "  lab:\n"
                       "    base: low-cost\n"
                       "    compression: zstd\n"
                       "    compression_level: 5\n"
                       "    hardware: [\"one box\"]\n";
    scomm_preset_set_t *set = malloc(sizeof(*set));
    const scomm_preset_entry_t *e;
    char err[512] = "", path[] = "/tmp/scomm_preset_XXXXXX";
    scomm_preset_t p;
    FILE *f;
    int fd;

    ST_ASSERT(set != NULL);
    scomm_preset_builtins(set);
    ST_ASSERT_OK(scomm_preset_parse(text, strlen(text), "x", set, err,
                                    sizeof(err)));
    ST_ASSERT_EQ(set->n, 4);
    e = scomm_preset_find(set, "high-bw");
    ST_ASSERT_EQ(e->preset.chunk_size, (size_t)8 << 20);
    ST_ASSERT_EQ(e->preset.overlap_streams, 4); /* kept from built-in */
    e = scomm_preset_find(set, "lab");
    ST_ASSERT(e != NULL);
    ST_ASSERT_EQ(e->preset.backend, SCOMM_PRESET_BACKEND_TCP);
    ST_ASSERT_EQ(e->preset.target_dtype, SCOMM_PRESET_DTYPE_FP8_E4M3);
    ST_ASSERT_EQ(e->preset.compression, SCOMM_PRESET_COMPRESS_ZSTD);
    ST_ASSERT_EQ(e->preset.compression_level, 5);
    ST_ASSERT_EQ(e->nhardware, 1);
    free(set);

    /* file via SCOMM_PRESET_FILE, then env on top */
    fd = mkstemp(path);
    ST_ASSERT(fd >= 0);
    f = fdopen(fd, "w");
    fputs(text, f);
    fclose(f);
    setenv("SCOMM_PRESET_FILE", path, 1);
    ST_ASSERT_OK(scomm_preset_get("lab", NULL, &p));
    ST_ASSERT_EQ(p.compression_level, 5);
    ST_ASSERT_OK(scomm_preset_get("high-bw", NULL, &p));
    ST_ASSERT_EQ(p.chunk_size, (size_t)8 << 20);
    setenv("SCOMM_KV_CHUNK_SIZE", "512k", 1);
    setenv("SCOMM_TCP_NSOCKS", "3", 1);
    ST_ASSERT_OK(scomm_preset_get("high-bw", NULL, &p));
    ST_ASSERT_EQ(p.chunk_size, (size_t)512 << 10); /* env beats file */
    ST_ASSERT_EQ(p.tcp_nsocks, 3);
    setenv("SCOMM_KV_ZERO_COPY", "perhaps", 1);
    ST_ASSERT_STATUS(scomm_preset_get("high-bw", NULL, &p),
                     SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT(strstr(scomm_last_error(), "SCOMM_KV_ZERO_COPY") != NULL);
    clear_env();
    /* a broken file is an error of scomm_preset_get, with its position */
    f = fopen(path, "w");
    fputs("presets:\n  high-bw:\n    prefetch: 3\n", f);
    fclose(f);
    ST_ASSERT_STATUS(scomm_preset_get("high-bw", path, &p),
                     SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT(strstr(scomm_last_error(), ":3:5: unknown key 'prefetch'") !=
              NULL);
    unlink(path);
    ST_ASSERT_STATUS(scomm_preset_get("high-bw", path, &p),
                     SCOMM_ERR_BAD_CONFIG);
}

int main(int argc, char **argv)
{
    clear_env();
    test_builtins();
    if (argc > 1) {
        test_file_matches(argv[1]);
    }
    test_errors();
    test_layering();
    printf("test_topo_preset: ok\n");
    return 0;
}
