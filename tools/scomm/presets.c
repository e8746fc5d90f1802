/*
 * presets.c - `scomm presets list | show NAME | validate FILE`: the
 * transport presets (built-ins, plus --file F or $SCOMM_PRESET_FILE), one
 * preset as YAML, and a file checked with file:line:column errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "scomm.h"
#include "topo/preset.h"

static void presets_usage(FILE *f)
{
    fprintf(f,
            "usage: scomm presets list [--file FILE]\n"
            "       scomm presets show NAME [--file FILE] [--env]\n"
            "       scomm presets validate FILE\n"
            "  --file FILE  presets file on top of the built-ins "
            "(default: $SCOMM_PRESET_FILE)\n"
            "  --env        show NAME with SCOMM_KV_* overrides applied\n");
}

static int presets_load(const char *file, scomm_preset_set_t **set_p)
{
    scomm_preset_set_t *set = malloc(sizeof(*set));
    char err[512];

    if (set == NULL) {
        fprintf(stderr, "scomm presets: out of memory\n");
        return 1;
    }
    if (scomm_preset_load(file, set, err, sizeof(err)) != SCOMM_OK) {
        fprintf(stderr, "scomm presets: %s\n", err);
        free(set);
        return 1;
    }
    *set_p = set;
    return 0;
}

static int presets_list(const char *file)
{
    scomm_preset_set_t *set;
    char chunk[32];
    int i;

    if (presets_load(file, &set) != 0) {
        return 1;
    }
    printf("%-14s %-7s %-9s %8s %7s %8s %-9s %-5s %s\n", "name", "backend",
           "dtype", "chunk", "streams", "prefetch", "zero_copy", "comp",
           "description");
    for (i = 0; i < set->n; i++) {
        const scomm_preset_t *p = &set->entry[i].preset;

        scomm_cli_fmt_size(chunk, sizeof(chunk), p->chunk_size);
        printf("%-14s %-7s %-9s %8s %7d %8d %-9s %-5s %s\n", p->name,
               scomm_preset_backend_name(p->backend),
               scomm_preset_dtype_name(p->target_dtype), chunk,
               p->overlap_streams, p->prefetch_depth,
               p->zero_copy ? "yes" : "no",
               scomm_preset_compress_name(p->compression),
               set->entry[i].description);
    }
    free(set);
    return 0;
}

static int presets_show(const char *name, const char *file, int env)
{
    const scomm_preset_entry_t *e;
    scomm_preset_entry_t copy;
    scomm_preset_set_t *set;
    char text[4096], err[512];
    int i;

    if (presets_load(file, &set) != 0) {
        return 1;
    }
    e = scomm_preset_find(set, name);
    if (e == NULL) {
        fprintf(stderr, "scomm presets: unknown preset '%s' (known:", name);
        for (i = 0; i < set->n; i++) {
            fprintf(stderr, " %s", set->entry[i].preset.name);
        }
        fprintf(stderr, ")\n");
        free(set);
        return 1;
    }
    copy = *e;
    free(set);
    if (env && (scomm_preset_apply_env(&copy.preset, err, sizeof(err)) !=
                SCOMM_OK)) {
        fprintf(stderr, "scomm presets: %s\n", err);
        return 1;
    }
    scomm_preset_format(&copy, text, sizeof(text));
    printf("presets:\n%s", text);
    return 0;
}

static int presets_validate(const char *file)
{
    scomm_preset_set_t *set;
    int i;

    if (presets_load(file, &set) != 0) {
        return 1;
    }
    printf("%s: ok, %d presets:", file, set->n);
    for (i = 0; i < set->n; i++) {
        printf(" %s%s", set->entry[i].preset.name,
               (set->entry[i].line > 0) ? "" : " (built-in)");
    }
    printf("\n");
    free(set);
    return 0;
}

int scomm_cli_presets(int argc, char **argv)
{
    const char *file = NULL, *name = NULL;
    int i, env = 0;

    if (argc < 2) {
        presets_usage(stderr);
        return 2;
    }
    if ((strcmp(argv[1], "-h") == 0) || (strcmp(argv[1], "--help") == 0)) {
        presets_usage(stdout);
        return 0;
    }
    for (i = 2; i < argc; i++) {
        if ((strcmp(argv[i], "--file") == 0) && (i + 1 < argc)) {
            file = argv[++i];
        } else if (strcmp(argv[i], "--env") == 0) {
            env = 1;
        } else if ((argv[i][0] != '-') && (name == NULL)) {
            name = argv[i];
        } else {
            fprintf(stderr, "scomm presets: unexpected '%s'\n", argv[i]);
            presets_usage(stderr);
            return 2;
        }
    }
    if (strcmp(argv[1], "list") == 0) {
        return presets_list(file);
    }
    if ((strcmp(argv[1], "show") == 0) && (name != NULL)) {
        return presets_show(name, file, env);
    }
    if ((strcmp(argv[1], "validate") == 0) && (name != NULL)) {
        return presets_validate(name);
    }
    presets_usage(stderr);
    return 2;
}
