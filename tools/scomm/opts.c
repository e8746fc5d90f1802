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
#define CLI_MAX_LIST  64  /* items of a list option */

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

void scomm_cli_want_list(char *want, size_t len, const char *prefix, int n,
                         const char *(*name)(const void *ctx, int i),
                         const void *ctx)
{
    size_t k;
    int i;

    snprintf(want, len, "%s", prefix);
    for (i = 0; i < n; i++) {
        k = strlen(want);
        snprintf(want + k, len - k, "%s %s", (i > 0) ? "," : "",
                 name(ctx, i));
    }
}

static const char *cli_list_name(const void *ctx, int i)
{
    return ((const char *const *)ctx)[i];
}

void scomm_cli_want_one_of(char *want, size_t len, const char *const *names)
{
    int n = 0;

    while (names[n] != NULL) {
        n++;
    }
    scomm_cli_want_list(want, len, "expected one of", n, cli_list_name,
                        names);
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

/* What one number of option o may be: "an integer from 1 to 16". */
static void cli_range(const scomm_cli_opt_t *o, char *buf, size_t len)
{
    char lo[32], hi[32];

    switch (o->kind) {
    case SCOMM_CLI_INT:
        snprintf(buf, len, "an integer from %lld to %lld", o->lo, o->hi);
        break;
    case SCOMM_CLI_SIZE:
    case SCOMM_CLI_SIZE_LIST:
        scomm_cli_fmt_size(lo, sizeof(lo), (size_t)o->lo);
        scomm_cli_fmt_size(hi, sizeof(hi), (size_t)o->hi);
        snprintf(buf, len, "a number from %s to %s (suffix k, m or g "
                 "allowed)", lo, hi);
        break;
    default:
        snprintf(buf, len, "a number %s %.10g %s %.10g",
                 o->gt_lo ? ">" : "from", o->dlo,
                 o->gt_lo ? "and <=" : "to", o->dhi);
        break;
    }
}

/* One number of option o (INT, SIZE, DOUBLE or an item of a list) from
 * text, checked against the option's range; 0 or -1. */
static int cli_number(const scomm_cli_opt_t *o, const char *text,
                      uint64_t *bits, double *d)
{
    long long v;
    size_t z;

    switch (o->kind) {
    case SCOMM_CLI_INT:
        if ((scomm_cli_parse_ll(text, &v) != 0) || (v < o->lo) ||
            (v > o->hi)) {
            return -1;
        }
        *bits = (uint64_t)v;
        return 0;
    case SCOMM_CLI_SIZE:
    case SCOMM_CLI_SIZE_LIST:
        if ((scomm_cli_parse_size(text, &z) != 0) ||
            (z < (unsigned long long)o->lo) ||
            (z > (unsigned long long)o->hi)) {
            return -1;
        }
        *bits = z;
        return 0;
    default:
        if ((scomm_cli_parse_double(text, d) != 0) || (*d < o->dlo) ||
            (o->gt_lo && (*d == o->dlo)) || (*d > o->dhi)) {
            return -1;
        }
        return 0;
    }
}

/* Store a checked integer in the 4 or 8 bytes of the option's variable. */
static int cli_put(void *dst, size_t size, uint64_t bits)
{
    uint32_t w;

    if (size == sizeof(uint32_t)) {
        w = (uint32_t)bits;
        memcpy(dst, &w, sizeof(w));
    } else if (size == sizeof(uint64_t)) {
        memcpy(dst, &bits, sizeof(bits));
    } else {
        return -1;
    }
    return 0;
}

/* A comma list "8,64,1m" of an option's numbers into its array. */
static int cli_list(const scomm_cli_opt_t *o, const char *text)
{
    union {
        size_t z[CLI_MAX_LIST];
        double d[CLI_MAX_LIST];
    } tmp;
    const char *p = text, *e;
    char tok[64];
    uint64_t bits;
    int n = 0;

    if ((o->max > CLI_MAX_LIST) || (o->size != sizeof(tmp.z[0]))) {
        return -1;
    }
    for (;;) {
        e = strchr(p, ',');
        e = (e != NULL) ? e : p + strlen(p);
        if ((n == o->max) || ((size_t)(e - p) >= sizeof(tok))) {
            return -1;
        }
        memcpy(tok, p, (size_t)(e - p));
        tok[e - p] = '\0';
        if (cli_number(o, tok, &bits, &tmp.d[n]) != 0) {
            return -1;
        }
        if (o->kind == SCOMM_CLI_SIZE_LIST) {
            tmp.z[n] = (size_t)bits;
        }
        n++;
        if (*e == '\0') {
            break;
        }
        p = e + 1;
    }
    memcpy(o->dst, &tmp, o->size * (size_t)n);
    *o->count = n;
    return 0;
}

/* Check text for option o and store it; 0 or 2 (reported). */
static int cli_store(const char *cmd, const scomm_cli_opt_t *o,
                     const char *text)
{
    char label[64], want[512], range[128];
    uint64_t bits = 0;
    double d;
    int i;

    cli_label(o, label, sizeof(label));
    switch (o->kind) {
    case SCOMM_CLI_FLAG:
        *(int *)o->dst = 1;
        return 0;
    case SCOMM_CLI_INT:
    case SCOMM_CLI_SIZE:
    case SCOMM_CLI_DOUBLE:
        if (cli_number(o, text, &bits, &d) != 0) {
            cli_range(o, range, sizeof(range));
            return scomm_cli_bad_value(cmd, label, text, "expected %s",
                                       range);
        }
        if (o->kind == SCOMM_CLI_DOUBLE) {
            *(double *)o->dst = d;
        } else if (cli_put(o->dst, o->size, bits) != 0) {
            break;
        }
        return 0;
    case SCOMM_CLI_SIZE_LIST:
    case SCOMM_CLI_DOUBLE_LIST:
        if (cli_list(o, text) != 0) {
            cli_range(o, range, sizeof(range));
            return scomm_cli_bad_value(cmd, label, text, "expected a comma "
                                       "list of at most %d items, each %s",
                                       o->max, range);
        }
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
    return scomm_cli_bad_value(cmd, label, text, "internal error: the "
                               "option's variable has %zu bytes", o->size);
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
    char typed[64], list[512], tail[540];
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
        snprintf(tail, sizeof(tail), ": could be %s", list);
        return scomm_cli_usage_quoted(cmd->name, "ambiguous option", typed,
                                      tail);
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
