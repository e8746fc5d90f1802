/*
 * fuzz_presets.c - fuzz target for the preset file loader
 * (scomm_preset_parse in src/topo/preset.c, libyaml underneath).
 *
 * Input: the YAML file's bytes.
 *
 * Invariants: a refusal is SCOMM_ERR_BAD_CONFIG (or NO_MEMORY) with a
 * message "fuzz.yaml:LINE:COLUMN: ..." with LINE, COLUMN >= 1; an accepted
 * file leaves every preset valid (scomm_preset_check), names
 * NUL-terminated, and printing each preset as YAML parses back to the
 * same values.
 */
#include "fuzz_common.h"

#include "scomm.h"
#include "topo/preset.h"

#define FUZZ_NAME "fuzz.yaml"

static void same(const scomm_preset_t *a, const scomm_preset_t *b)
{
    FUZZ_CHECK(strcmp(a->name, b->name) == 0);
    FUZZ_CHECK(a->backend == b->backend);
    FUZZ_CHECK(a->target_dtype == b->target_dtype);
    FUZZ_CHECK(a->chunk_size == b->chunk_size);
    FUZZ_CHECK(a->overlap_streams == b->overlap_streams);
    FUZZ_CHECK(a->prefetch_depth == b->prefetch_depth);
    FUZZ_CHECK(a->zero_copy == b->zero_copy);
    FUZZ_CHECK(a->compression == b->compression);
    FUZZ_CHECK(a->compression_level == b->compression_level);
    FUZZ_CHECK(a->tcp_nsocks == b->tcp_nsocks);
    FUZZ_CHECK(a->tcp_eager_max == b->tcp_eager_max);
    FUZZ_CHECK(a->shm_chunk == b->shm_chunk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static scomm_preset_set_t set, again;
    static char text[8192];
    char err[512];
    unsigned long line, col;
    uint8_t *copy;
    int status, i, n;

    copy = fuzz_dup(data, size);
    scomm_preset_builtins(&set);
    memset(err, FUZZ_WHY_FILL, sizeof(err));
    status = scomm_preset_parse((const char *)copy, size, FUZZ_NAME, &set,
                                err, sizeof(err));
    free(copy);
    if (status != SCOMM_OK) {
        FUZZ_CHECK((status == SCOMM_ERR_BAD_CONFIG) ||
                   (status == SCOMM_ERR_NO_MEMORY));
        fuzz_check_why(err, sizeof(err));
        if (status == SCOMM_ERR_BAD_CONFIG) {
            FUZZ_CHECK(sscanf(err, FUZZ_NAME ":%lu:%lu:", &line, &col) ==
                       2);
            FUZZ_CHECK((line >= 1) && (col >= 1));
        }
        return 0;
    }
    FUZZ_CHECK((set.n >= 3) && (set.n <= SCOMM_PRESET_SET_MAX));
    for (i = 0; i < set.n; i++) {
        const scomm_preset_entry_t *e = &set.entry[i];

        fuzz_check_str(e->preset.name, sizeof(e->preset.name));
        fuzz_check_str(e->description, sizeof(e->description));
        FUZZ_CHECK(scomm_preset_check(&e->preset, err, sizeof(err)) ==
                   SCOMM_OK);
        /* descriptions with quotes or backslashes do not print back */
        if ((strchr(e->description, '"') != NULL) ||
            (strchr(e->description, '\\') != NULL)) {
            continue;
        }
        n = snprintf(text, sizeof(text), "presets:\n");
        n += scomm_preset_format(e, text + n, sizeof(text) - (size_t)n);
        FUZZ_CHECK((n > 0) && ((size_t)n < sizeof(text)));
        scomm_preset_builtins(&again);
        status = scomm_preset_parse(text, (size_t)n, "again", &again, err,
                                    sizeof(err));
        if (status != SCOMM_OK) {
            /* hardware lines may hold what a quoted scalar cannot */
            FUZZ_CHECK(e->nhardware > 0);
            continue;
        }
        same(&e->preset, &scomm_preset_find(&again, e->preset.name)->preset);
    }
    return 0;
}
