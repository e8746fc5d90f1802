/*
 * opts.c - getopt_long over a subcommand's option table, with checked
 * values and one-line usage errors (opts.h says what is promised).
 *
 * Design notes:
 *  1. getopt_long runs with opterr = 0 and a leading ':' in the short
 *     option string, so it never prints; every message is made here, and
 *     written with one fputs so that a line is never torn.
 *  2. A long-only option gets the getopt value 256 + its table index; an
 *     option with a letter gets the letter. -h/--help is always there.
 *  3. optind is set to 0 before each parse: glibc then re-initialises its
 *     scanner, so a second parse in one process (scomm help CMD) starts
 *     clean.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/util.h"
#include "opts.h"

#define CLI_MAX_OPTS  62
#define CLI_MSG_MAX   1024
#define CLI_VALUE_MAX 128 /* bytes of a value quoted in a message */
#define CLI_LONG_BASE 256

/* Append the escaped, quoted text to buf (len bytes, always terminated). */
static void cli_quote(char *buf, size_t len, const char *text)
{
    size_t n = strlen(buf), i;
    const unsigned char *p = (const unsigned char *)text;

    for (i = 0; (p[i] != '\0') && (i < CLI_VALUE_MAX) && (n + 8 < len);
         i++) {
        if ((p[i] < 0x20) || (p[i] == 0x7f)) {
            n += (size_t)snprintf(buf + n, len - n, "\\x%02x", p[i]);
        } else {
            buf[n++] = (char)p[i];
        }
    }
    if ((p[i] != '\0') && (n + 4 < len)) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
}

static int cli_say(const char *cmd, const char *opt, const char *value,
                   int hint, const char *fmt, va_list ap)
{
    char msg[CLI_MSG_MAX];
    size_t n;

    snprintf(msg, sizeof(msg), "scomm%s%s: ", (cmd != NULL) ? " " : "",
             (cmd != NULL) ? cmd : "");
    if (opt != NULL) {
        n = strlen(msg);
        snprintf(msg + n, sizeof(msg) - n, "%s '", opt);
        cli_quote(msg, sizeof(msg) - 4, value);
        n = strlen(msg);
        snprintf(msg + n, sizeof(msg) - n, "': ");
    }
    n = strlen(msg);
    vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
    if (hint) {
        n = strlen(msg);
        snprintf(msg + n, sizeof(msg) - n, "; run 'scomm%s%s --help' for "
                 "usage", (cmd != NULL) ? " " : "", (cmd != NULL) ? cmd : "");
    }
    n = strlen(msg);
    if (n + 2 > sizeof(msg)) {
        n = sizeof(msg) - 2;
    }
    msg[n]     = '\n';
    msg[n + 1] = '\0';
    fflush(stdout);
    fputs(msg, stderr);
    return 2;
}

int scomm_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = cli_say(cmd, NULL, NULL, 1, fmt, ap);
    va_end(ap);
    return rc;
}

int scomm_cli_bad_value(const char *cmd, const char *opt, const char *value,
                        const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = cli_say(cmd, opt, value, 0, fmt, ap);
    va_end(ap);
    return rc;
}

int scomm_cli_usage_quoted(const char *cmd, const char *what,
                           const char *text, const char *tail)
{
    char buf[CLI_MSG_MAX];

    snprintf(buf, sizeof(buf), "%s '", what);
    cli_quote(buf, sizeof(buf) - 4, text);
    strncat(buf, "'", sizeof(buf) - strlen(buf) - 1);
    strncat(buf, tail, sizeof(buf) - strlen(buf) - 1);
    return scomm_cli_usage_error(cmd, "%s", buf);
}

/* ---- conversions -------------------------------------------------------- */

int scomm_cli_parse_ll(const char *text, long long *out)
{
    const char *d = text;
    char *end     = NULL;
    long long v;

    if ((d != NULL) && ((*d == '-') || (*d == '+'))) {
        d++;
    }
    if ((d == NULL) || !isdigit((unsigned char)*d)) {
        return -1;
    }
    errno = 0;
    v = strtoll(text, &end, 10);
    if ((errno != 0) || (*end != '\0')) {
        return -1;
    }
    *out = v;
    return 0;
}

/* The library's size syntax (core/util.c), into a size_t. */
int scomm_cli_parse_size(const char *text, size_t *out)
{
    uint64_t v;

    if ((scomm_parse_size(text, &v) != 0) || (v > SIZE_MAX)) {
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

int scomm_cli_parse_double(const char *text, double *out)
{
    char *end = NULL;
    double v;

    if ((text == NULL) || (*text == '\0') ||
        isspace((unsigned char)*text)) {
        return -1;
    }
    errno = 0;
    v = strtod(text, &end);
    if ((errno != 0) || (end == text) || (*end != '\0') || !isfinite(v)) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Each comma-separated item of text through item(); the number of items,
 * or -1 when one is empty or bad or there are more than max. */
static int cli_list(const char *text, int max, void *ctx,
                    int (*item)(const char *tok, void *ctx, int i))
{
    const char *p = text, *e;
    char tok[64];
    int n = 0;

    for (;;) {
        e = strchr(p, ',');
        e = (e != NULL) ? e : p + strlen(p);
        if ((n == max) || ((size_t)(e - p) >= sizeof(tok))) {
            return -1;
        }
        memcpy(tok, p, (size_t)(e - p));
        tok[e - p] = '\0';
        if (item(tok, ctx, n) != 0) {
            return -1;
        }
        n++;
        if (*e == '\0') {
            return n;
        }
        p = e + 1;
    }
}

typedef struct {
    size_t *out;
    size_t  lo, hi;
} cli_sizes_t;

static int cli_size_item(const char *tok, void *ctx, int i)
{
    cli_sizes_t *c = ctx;

    return ((scomm_cli_parse_size(tok, &c->out[i]) != 0) ||
            (c->out[i] < c->lo) || (c->out[i] > c->hi)) ? -1 : 0;
}

int scomm_cli_parse_sizes(const char *text, size_t lo, size_t hi,
                          size_t *out, int max)
{
    cli_sizes_t c = {out, lo, hi};

    return cli_list(text, max, &c, cli_size_item);
}

typedef struct {
    double *out;
    double  gt, hi;
} cli_doubles_t;

static int cli_double_item(const char *tok, void *ctx, int i)
{
    cli_doubles_t *c = ctx;

    return ((scomm_cli_parse_double(tok, &c->out[i]) != 0) ||
            !(c->out[i] > c->gt) || (c->out[i] > c->hi)) ? -1 : 0;
}

int scomm_cli_parse_doubles(const char *text, double gt, double hi,
                            double *out, int max)
{
    cli_doubles_t c = {out, gt, hi};

    return cli_list(text, max, &c, cli_double_item);
}

void scomm_cli_want_one_of(char *want, size_t len, const char *const *names)
{
    size_t n;
    int i;

    snprintf(want, len, "expected one of");
    for (i = 0; names[i] != NULL; i++) {
        n = strlen(want);
        snprintf(want + n, len - n, "%s %s", (i > 0) ? "," : "", names[i]);
    }
}

/* ---- one option ---------------------------------------------------------- */

/* "--name", or "-k" for an option without a long name. */
static const char *cli_label(const scomm_cli_opt_t *o, char *buf, size_t len)
{
    if (o->name != NULL) {
        snprintf(buf, len, "--%s", o->name);
    } else {
        snprintf(buf, len, "-%c", o->key);
    }
    return buf;
}

static int cli_store_int(const scomm_cli_opt_t *o, long long v)
{
    if (o->size == sizeof(int32_t)) {
        *(int32_t *)o->dst = (int32_t)v;
    } else if (o->size == sizeof(int64_t)) {
        *(int64_t *)o->dst = (int64_t)v;
    } else {
        return -1;
    }
    return 0;
}

static int cli_store_uint(const scomm_cli_opt_t *o, unsigned long long v)
{
    if (o->size == sizeof(uint32_t)) {
        *(uint32_t *)o->dst = (uint32_t)v;
    } else if (o->size == sizeof(uint64_t)) {
        *(uint64_t *)o->dst = (uint64_t)v;
    } else {
        return -1;
    }
    return 0;
}

/* Check text for option o and store it; 0 or 2 (reported). */
static int cli_store(const char *cmd, const scomm_cli_opt_t *o,
                     const char *text)
{
    char label[64], want[512], lo[32], hi[32];
    long long v;
    size_t z;
    double d;
    int i, bad = 0;

    cli_label(o, label, sizeof(label));
    switch (o->kind) {
    case SCOMM_CLI_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case SCOMM_CLI_INT:
        if ((scomm_cli_parse_ll(text, &v) != 0) || (v < o->lo) ||
            (v > o->hi)) {
            return scomm_cli_bad_value(cmd, label, text, "expected an "
                                       "integer from %lld to %lld", o->lo,
                                       o->hi);
        }
        bad = cli_store_int(o, v);
        break;
    case SCOMM_CLI_SIZE:
        if ((scomm_cli_parse_size(text, &z) != 0) ||
            (z < (unsigned long long)o->lo) ||
            (z > (unsigned long long)o->hi)) {
            scomm_cli_fmt_size(lo, sizeof(lo), (size_t)o->lo);
            scomm_cli_fmt_size(hi, sizeof(hi), (size_t)o->hi);
            return scomm_cli_bad_value(cmd, label, text, "expected a "
                                       "number from %s to %s (suffix k, m "
                                       "or g allowed)", lo, hi);
        }
        bad = cli_store_uint(o, z);
        break;
    case SCOMM_CLI_DOUBLE:
        if ((scomm_cli_parse_double(text, &d) != 0) || (d < o->dlo) ||
            (o->gt_lo && (d == o->dlo)) || (d > o->dhi)) {
            return scomm_cli_bad_value(cmd, label, text, "expected a number "
                                       "%s %.10g %s %.10g",
                                       o->gt_lo ? ">" : "from", o->dlo,
                                       o->gt_lo ? "and <=" : "to", o->dhi);
        }
        *(double *)o->dst = d;
        return 0;
    case SCOMM_CLI_ENUM:
        for (i = 0; o->names[i] != NULL; i++) {
            if (strcmp(text, o->names[i]) == 0) {
                *(int *)o->dst = (o->values != NULL) ? o->values[i] : i;
                return 0;
            }
        }
        scomm_cli_want_one_of(want, sizeof(want), o->names);
        return scomm_cli_bad_value(cmd, label, text, "%s", want);
    case SCOMM_CLI_STRING:
        *(const char **)o->dst = text;
        return 0;
    case SCOMM_CLI_FUNC:
        want[0] = '\0';
        if (o->fn(text, o->dst, want, sizeof(want)) != 0) {
            return scomm_cli_bad_value(cmd, label, text, "%s", want);
        }
        return 0;
    }
    if (bad) {
        return scomm_cli_bad_value(cmd, label, text, "internal error: the "
                                   "option's variable has %zu bytes",
                                   o->size);
    }
    return 0;
}

/* ---- the whole command line ---------------------------------------------- */

static const scomm_cli_opt_t *cli_find(const scomm_cli_cmd_t *cmd, int val)
{
    int i;

    if ((val >= CLI_LONG_BASE) && (val < CLI_LONG_BASE + cmd->nopts)) {
        return &cmd->opts[val - CLI_LONG_BASE];
    }
    for (i = 0; (val > 0) && (i < cmd->nopts); i++) {
        if (cmd->opts[i].key == val) {
            return &cmd->opts[i];
        }
    }
    return NULL;
}

/* An unknown long option: say so, or list what an abbreviation matches. */
static int cli_unknown_long(const scomm_cli_cmd_t *cmd, const char *arg)
{
    char typed[64], list[512];
    size_t len, n;
    int i, hits = 0;

    snprintf(typed, sizeof(typed), "%s", arg);
    typed[strcspn(typed, "=")] = '\0';
    len = strlen(typed + 2);
    list[0] = '\0';
    for (i = 0; (len > 0) && (i < cmd->nopts); i++) {
        if ((cmd->opts[i].name != NULL) &&
            (strncmp(cmd->opts[i].name, typed + 2, len) == 0)) {
            n = strlen(list);
            snprintf(list + n, sizeof(list) - n, "%s--%s",
                     (hits > 0) ? ", " : "", cmd->opts[i].name);
            hits++;
        }
    }
    if (hits > 1) {
        return scomm_cli_usage_error(cmd->name, "ambiguous option '%.*s':"
                                     " could be %s", 48, arg, list);
    }
    return scomm_cli_usage_quoted(cmd->name, "unknown option", typed, "");
}

int scomm_cli_parse(const scomm_cli_cmd_t *cmd, int argc, char **argv,
                    int *first)
{
    struct option longs[CLI_MAX_OPTS + 2];
    char shorts[3 * CLI_MAX_OPTS + 8], label[64];
    const scomm_cli_opt_t *o;
    size_t ns = 0;
    int i, nl = 0, c, rc;

    if (cmd->nopts > CLI_MAX_OPTS) {
        return scomm_cli_usage_error(cmd->name, "internal error: more than "
                                     "%d options", CLI_MAX_OPTS);
    }
    if (cmd->flags & SCOMM_CLI_IN_ORDER) {
        shorts[ns++] = '+'; /* otherwise options and arguments may mix */
    }
    shorts[ns++] = ':';
    shorts[ns++] = 'h';
    for (i = 0; i < cmd->nopts; i++) {
        o = &cmd->opts[i];
        if (o->name != NULL) {
            longs[nl].name    = o->name;
            longs[nl].has_arg = (o->kind == SCOMM_CLI_FLAG)
                                    ? no_argument : required_argument;
            longs[nl].flag    = NULL;
            longs[nl].val     = (o->key != 0) ? o->key : CLI_LONG_BASE + i;
            nl++;
        }
        if (o->key != 0) {
            shorts[ns++] = (char)o->key;
            if (o->kind != SCOMM_CLI_FLAG) {
                shorts[ns++] = ':';
            }
        }
    }
    shorts[ns] = '\0';
    longs[nl++] = (struct option){"help", no_argument, NULL, 'h'};
    longs[nl]   = (struct option){NULL, 0, NULL, 0};

    opterr = 0;
    optind = 0; /* design note 3 */
    while ((c = getopt_long(argc, argv, shorts, longs, NULL)) != -1) {
        if (c == 'h') {
            cmd->usage(stdout);
            return 0;
        }
        if (c == ':') {
            o = cli_find(cmd, optopt);
            return scomm_cli_usage_error(cmd->name, "%s needs a value",
                                         (o != NULL)
                                             ? cli_label(o, label,
                                                         sizeof(label))
                                             : argv[optind - 1]);
        }
        if (c == '?') {
            o = cli_find(cmd, optopt);
            if ((o != NULL) || (optopt == 'h')) {
                /* --flag=value for an option that takes none */
                return scomm_cli_usage_quoted(cmd->name, "option",
                                              argv[optind - 1],
                                              " takes no value");
            }
            if (optopt != 0) {
                snprintf(label, sizeof(label), "-%c", optopt);
                return scomm_cli_usage_quoted(cmd->name, "unknown option",
                                              label, "");
            }
            return cli_unknown_long(cmd, argv[optind - 1]);
        }
        o = cli_find(cmd, c);
        if (o == NULL) {
            return scomm_cli_usage_error(cmd->name, "internal error: "
                                         "option %d", c);
        }
        rc = cli_store(cmd->name, o, optarg);
        if (rc != 0) {
            return rc;
        }
    }
    if ((cmd->max_args >= 0) && (argc - optind > cmd->max_args)) {
        return scomm_cli_usage_quoted(cmd->name, "unexpected argument",
                                      argv[optind + cmd->max_args], "");
    }
    *first = optind;
    return -1;
}
