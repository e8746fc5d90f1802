/*
 * opts.h - the options of the scomm subcommands, declared as data.
 *
 * A subcommand lists its options in a table of scomm_cli_opt_t (one line
 * each, with the CLI_* initialisers below) and hands it with its name and
 * usage printer to scomm_cli_parse(), which runs getopt_long over argv,
 * converts and checks every value and stores it. Adding an option is one
 * line in the table, one in the usage text.
 *
 * Invariants:
 *  1. A usage error is exactly one line on stderr starting "scomm CMD: ",
 *     and exit code 2. Nothing else is printed: no usage page.
 *  2. A bad value names the option, the value and what is accepted:
 *         scomm kv-bench: --wire 'bogus': expected one of native, fp8, int4
 *     An unknown option, a missing value or a stray argument ends with
 *         ; run 'scomm CMD --help' for usage
 *  3. -h/--help prints the usage page on stdout and means exit code 0.
 *  4. Numbers are whole strings: "12x", "", " 5", "1e3" for an integer, an
 *     overflowing value and anything out of the option's range are errors,
 *     never a silent default or a clamp. Sizes take the suffixes k, m, g
 *     (powers of 1024, either case, with an optional b: 64k, 1M, 1GB).
 *  5. A value is stored only once it has passed its checks; what an
 *     option does not see keeps the default the caller put there.
 *  6. Values are quoted as given, with control characters escaped, so the
 *     message stays one line whatever was typed.
 */
#ifndef SCOMM_TOOLS_OPTS_H
#define SCOMM_TOOLS_OPTS_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    SCOMM_CLI_FLAG,   /* no value: *(int *)dst = 1 */
    SCOMM_CLI_INT,    /* decimal integer in [lo, hi]; dst of 4 or 8 bytes */
    SCOMM_CLI_SIZE,   /* integer with k/m/g suffix in [lo, hi]; unsigned
                         dst of 4 or 8 bytes */
    SCOMM_CLI_DOUBLE, /* finite number in [dlo, dhi] (dlo excluded when
                         gt_lo); dst double */
    SCOMM_CLI_ENUM,   /* one of names (NULL-terminated); dst int gets
                         values[i], or i when values is NULL */
    SCOMM_CLI_SIZE_LIST,   /* "8,64,1m": SIZE items in [lo, hi] into the
                              size_t array dst, their number into *count */
    SCOMM_CLI_DOUBLE_LIST, /* "0.5,1": DOUBLE items into the double array
                              dst, their number into *count */
    SCOMM_CLI_STRING, /* any text; dst const char * */
    SCOMM_CLI_FUNC    /* fn checks and stores; dst is fn's */
} scomm_cli_kind_t;

/*
 * Check text and store it through dst. On a bad value return -1 and write
 * what is accepted into want ("expected ..."); the parser prints the line.
 */
typedef int (*scomm_cli_opt_fn_t)(const char *text, void *dst, char *want,
                                  size_t wantlen);

typedef struct scomm_cli_opt {
    const char         *name;   /* long name without "--", or NULL */
    int                 key;    /* short option letter, or 0 */
    scomm_cli_kind_t    kind;
    void               *dst;
    size_t              size;   /* sizeof(*dst) */
    long long           lo, hi; /* INT, SIZE */
    double              dlo, dhi;
    int                 gt_lo;  /* DOUBLE: dlo itself is not accepted */
    const char *const  *names;  /* ENUM */
    const int          *values; /* ENUM: the value of names[i], or NULL */
    int                *count;  /* lists: items stored */
    int                 max;    /* lists: room in dst (64 at most) */
    scomm_cli_opt_fn_t  fn;     /* FUNC */
} scomm_cli_opt_t;

#define CLI_OPT_(n, k, t, p) \
    .name = (n), .key = (k), .kind = (t), .dst = (p), .size = sizeof(*(p))
#define CLI_FLAG(n, k, p) {CLI_OPT_(n, k, SCOMM_CLI_FLAG, p)}
#define CLI_INT(n, k, p, l, h) \
    {CLI_OPT_(n, k, SCOMM_CLI_INT, p), .lo = (l), .hi = (h)}
#define CLI_SIZE(n, k, p, l, h) \
    {CLI_OPT_(n, k, SCOMM_CLI_SIZE, p), .lo = (l), .hi = (h)}
#define CLI_DOUBLE(n, k, p, l, h) \
    {CLI_OPT_(n, k, SCOMM_CLI_DOUBLE, p), .dlo = (l), .dhi = (h)}
#define CLI_DOUBLE_GT(n, k, p, l, h) \
    {CLI_OPT_(n, k, SCOMM_CLI_DOUBLE, p), .dlo = (l), .dhi = (h), .gt_lo = 1}
#define CLI_ENUM(n, k, p, names_) \
    {CLI_OPT_(n, k, SCOMM_CLI_ENUM, p), .names = (names_)}
#define CLI_ENUMV(n, k, p, names_, values_) \
    {CLI_OPT_(n, k, SCOMM_CLI_ENUM, p), .names = (names_), \
     .values = (values_)}
/* Lists: p is the array itself (its size is the room), c the count. */
#define CLI_SIZES(n, k, p, c, l, h) \
    {CLI_OPT_(n, k, SCOMM_CLI_SIZE_LIST, p), .count = (c), \
     .max = (int)(sizeof(p) / sizeof((p)[0])), .lo = (l), .hi = (h)}
#define CLI_DOUBLES_GT(n, k, p, c, l, h) \
    {CLI_OPT_(n, k, SCOMM_CLI_DOUBLE_LIST, p), .count = (c), \
     .max = (int)(sizeof(p) / sizeof((p)[0])), .dlo = (l), .dhi = (h), \
     .gt_lo = 1}
#define CLI_STR(n, k, p) {CLI_OPT_(n, k, SCOMM_CLI_STRING, p)}
#define CLI_FUNC(n, k, p, fn_) {CLI_OPT_(n, k, SCOMM_CLI_FUNC, p), .fn = (fn_)}

#define CLI_NOPTS(t) ((int)(sizeof(t) / sizeof((t)[0])))

enum {
    SCOMM_CLI_IN_ORDER = 1 << 0 /* stop at the first argument that is not
                                   an option (launch: the program) */
};

typedef struct scomm_cli_cmd {
    const char            *name;     /* "kv-bench", "bench p2p": messages
                                        start "scomm <name>: " */
    void                 (*usage)(FILE *f);
    const scomm_cli_opt_t *opts;
    int                    nopts;
    int                    flags;    /* SCOMM_CLI_IN_ORDER */
    int                    max_args; /* arguments after the options; -1:
                                        any number */
} scomm_cli_cmd_t;

/*
 * Parse argv[1..argc-1] (argv[0] is the command word) against cmd's table.
 * Returns -1 when the command is to go on, with *first the index of the
 * first argument that is not an option; otherwise the exit code: 0 after
 * --help printed the usage, 2 after a usage error was reported.
 */
int scomm_cli_parse(const scomm_cli_cmd_t *cmd, int argc, char **argv,
                    int *first);

/*
 * "scomm CMD: <message>; run 'scomm CMD --help' for usage" (cmd NULL:
 * "scomm: ...; run 'scomm --help' for usage"). Returns 2.
 */
int scomm_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The same for "<what> '<text, escaped>'<tail>": "unknown option '-x'". */
int scomm_cli_usage_quoted(const char *cmd, const char *what,
                           const char *text, const char *tail);

/* "scomm CMD: OPT 'VALUE': <message>" (value escaped). Returns 2. */
int scomm_cli_bad_value(const char *cmd, const char *opt, const char *value,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Strict conversions (invariant 4); 0 on success, -1 otherwise. */
int scomm_cli_parse_ll(const char *text, long long *out);
int scomm_cli_parse_size(const char *text, size_t *out);
int scomm_cli_parse_double(const char *text, double *out);

/* "expected one of a, b, c" for a NULL-terminated list. */
void scomm_cli_want_one_of(char *want, size_t len, const char *const *names);

/* "<prefix> NAME(0), NAME(1), ..." with names from a function. */
void scomm_cli_want_list(char *want, size_t len, const char *prefix, int n,
                         const char *(*name)(const void *ctx, int i),
                         const void *ctx);

#endif /* SCOMM_TOOLS_OPTS_H */
