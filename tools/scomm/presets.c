/*
 * presets.c - `scomm presets list | show NAME | validate FILE`: the
 * transport presets (built-ins, plus --file F or $SCOMM_PRESET_FILE), one
 * preset as YAML, and a file checked with file:line:column errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opts.h"
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
            "  --env        show NAME with SCOMM_KV_* overrides applied\n"
            "  -h, --help   this text\n");
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
    static const char *const verbs[] = {"list", "show", "validate", NULL};
    const char *file = NULL, *verb, *name;
    char want[64];
    int env = 0, rc, first, nargs;
    const scomm_cli_opt_t opts[] = {
        CLI_STR("file", 0, &file),
        CLI_FLAG("env", 0, &env),
    };
    const scomm_cli_cmd_t cmd = {"presets", presets_usage, opts,
                                 CLI_NOPTS(opts), 0, 2};

    rc = scomm_cli_parse(&cmd, argc, argv, &first);
    if (rc >= 0) {
        return rc;
    }
    nargs = argc - first;
    verb  = (nargs > 0) ? argv[first] : NULL;
    name  = (nargs > 1) ? argv[first + 1] : NULL;
    if (verb == NULL) {
        return scomm_cli_usage_error("presets", "missing the command (list, "
                                     "show NAME or validate FILE)");
    }
    if (strcmp(verb, "list") == 0) {
        if (name != NULL) {
            return scomm_cli_usage_error("presets", "list takes no "
                                         "argument");
        }
        return env ? scomm_cli_usage_error("presets", "--env goes with "
                                           "show")
                   : presets_list(file);
    }
    if (strcmp(verb, "show") == 0) {
        return (name == NULL)
                   ? scomm_cli_usage_error("presets", "show needs a preset "
                                           "NAME (scomm presets list)")
                   : presets_show(name, file, env);
    }
    if (strcmp(verb, "validate") == 0) {
        if ((name == NULL) || (file != NULL) || env) {
            return scomm_cli_usage_error("presets", "validate takes one "
                                         "FILE and no --file or --env");
        }
        return presets_validate(name);
    }
    scomm_cli_want_one_of(want, sizeof(want), verbs);
    return scomm_cli_bad_value("presets", "command", verb, "%s", want);
}
