/*
 * fuzz_config.c - fuzz target for the SCOMM_CONF_FILE parser
 * (scomm_config_parse_stream in src/core/config.c) and the value parsers
 * behind it (integers, sizes with k/m/g, booleans, words, bounded strings
 * and lists). Every registered knob may appear; those of scomm_config_t
 * (rows with a field, in any module's table) are checked here.
 *
 * Input: the file's bytes, handed over through fmemopen().
 *
 * Invariants: on success every string knob ends inside its field, and
 * printing the knobs as "SCOMM_NAME=value" lines parses back to the same
 * values; on failure the status is SCOMM_ERR_BAD_CONFIG and the message
 * starts with "<name>:<line>".
 */
#include "fuzz_common.h"

#include "core/config.h"
#include "core/module.h"

#define FUZZ_NAME "fuzz.conf"

/* The next row with a field in scomm_config_t after *m, *j (start both at
 * 0 and *j at -1 as size_t); NULL at the end. */
static const scomm_param_t *next_field(size_t *m, size_t *j)
{
    for (;;) {
        (*j)++;
        while ((*m < scomm_nmodules) && (*j >= scomm_modules[*m]->nparams)) {
            (*m)++;
            *j = 0;
        }
        if (*m >= scomm_nmodules) {
            return NULL;
        }
        if (scomm_modules[*m]->params[*j].size > 0) {
            return &scomm_modules[*m]->params[*j];
        }
    }
}

#define FOR_EACH_FIELD(_p, _m, _j)                                         \
    for ((_m) = 0, (_j) = (size_t)-1, (_p) = next_field(&(_m), &(_j));     \
         (_p) != NULL; (_p) = next_field(&(_m), &(_j)))

static void config_defaults(scomm_config_t *cfg)
{
    const scomm_param_t *p;
    char err[256];
    size_t m, j;

    memset(cfg, 0, sizeof(*cfg));
    FOR_EACH_FIELD(p, m, j) {
        FUZZ_CHECK(scomm_config_set(cfg, p->name, p->defval, err,
                                    sizeof(err)) == SCOMM_OK);
    }
}

static scomm_status_t parse_bytes(scomm_config_t *cfg, const uint8_t *data,
                                  size_t size, char *err, size_t errlen)
{
    scomm_status_t status;
    uint8_t *copy;
    FILE *f;

    if (size == 0) {
        return SCOMM_OK; /* fmemopen wants at least one byte */
    }
    copy = fuzz_dup(data, size);
    f    = fmemopen(copy, size, "r");
    FUZZ_CHECK(f != NULL);
    status = scomm_config_parse_stream(cfg, f, FUZZ_NAME, err, errlen);
    fclose(f);
    free(copy);
    return status;
}

/* Print every knob as a conf-file line; returns the text's length. */
static size_t config_print(const scomm_config_t *cfg, char *out, size_t cap)
{
    const scomm_param_t *p;
    const char *field;
    size_t n = 0, m, j;
    int r = 0;

    FOR_EACH_FIELD(p, m, j) {
        field = (const char *)cfg + p->offset;
        switch (p->type) {
        case SCOMM_PARAM_INT:
        case SCOMM_PARAM_BOOL:
            r = snprintf(out + n, cap - n, "%s=%lld\n", p->name,
                         (long long)*(const int64_t *)(const void *)field);
            break;
        case SCOMM_PARAM_SIZE:
            r = snprintf(out + n, cap - n, "%s=%llu\n", p->name,
                         (unsigned long long)
                             *(const uint64_t *)(const void *)field);
            break;
        case SCOMM_PARAM_STRING:
        case SCOMM_PARAM_LIST:
            r = snprintf(out + n, cap - n, "%s=%s\n", p->name, field);
            break;
        case SCOMM_PARAM_ENUM: /* no field holds one: the index would not
                                * print back as a word */
            FUZZ_CHECK(0);
            break;
        }
        FUZZ_CHECK((r > 0) && ((size_t)r < cap - n));
        n += (size_t)r;
    }
    return n;
}

static void check_equal(const scomm_config_t *a, const scomm_config_t *b)
{
    const scomm_param_t *p;
    size_t m, j;

    FOR_EACH_FIELD(p, m, j) {
        if ((p->type == SCOMM_PARAM_STRING) ||
            (p->type == SCOMM_PARAM_LIST)) {
            FUZZ_CHECK(strcmp((const char *)a + p->offset,
                              (const char *)b + p->offset) == 0);
        } else {
            FUZZ_CHECK(memcmp((const char *)a + p->offset,
                              (const char *)b + p->offset, p->size) == 0);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const scomm_param_t *p;
    scomm_config_t cfg, again;
    char err[512], text[4096];
    scomm_status_t status;
    size_t m, j, n;

    config_defaults(&cfg);
    memset(err, FUZZ_WHY_FILL, sizeof(err));
    status = parse_bytes(&cfg, data, size, err, sizeof(err));
    if (status != SCOMM_OK) {
        FUZZ_CHECK(status == SCOMM_ERR_BAD_CONFIG);
        fuzz_check_why(err, sizeof(err));
        FUZZ_CHECK(strncmp(err, FUZZ_NAME ":", strlen(FUZZ_NAME) + 1) == 0);
        return 0;
    }
    FOR_EACH_FIELD(p, m, j) {
        if ((p->type == SCOMM_PARAM_STRING) ||
            (p->type == SCOMM_PARAM_LIST)) {
            fuzz_check_str((const char *)&cfg + p->offset, p->size);
        }
    }
    /* Round trip through the printed form. */
    n = config_print(&cfg, text, sizeof(text));
    config_defaults(&again);
    status = parse_bytes(&again, (const uint8_t *)text, n, err, sizeof(err));
    if (status != SCOMM_OK) {
        fprintf(stderr, "re-parse failed: %s\n", err);
    }
    FUZZ_CHECK(status == SCOMM_OK);
    check_equal(&cfg, &again);
    return 0;
}
