/*
 * config.c - the configuration registry (config.h): core's own knobs, the
 * parsers every value goes through, SCOMM_CONF_FILE, and the warning about
 * SCOMM_* variables that no table knows.
 *
 * Invariants (besides config.h's):
 *  1. This is the only file that calls getenv() for a variable of scomm's.
 *  2. Every row lives in the table of the module that uses it; the tables
 *     are reached only through scomm_modules[] (module.h), so a table left
 *     out of that list is missing from `scomm info -c` and from lookups
 *     (scomm_param_get on it fails with SCOMM_ERR_INTERNAL).
 *  3. SCOMM_CONF_FILE is parsed again at each scomm_config_load (world
 *     init), and between those when its name, size, inode or time changes;
 *     parsed versions are never freed, so a value handed out from one stays
 *     valid for the process.
 *  4. Unknown SCOMM_* variables are warned about once per process, each by
 *     name with the closest known name when there is one; no prefix is
 *     exempt.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "module.h"
#include "shmem.h"
#include "util.h"

#define SCOMM_PARAM_TEXT_MAX 4095 /* STRING, LIST without a max */

static const scomm_param_t scomm_core_params[] = {
    {.name = "SCOMM_TIMEOUT_MS", .defval = "300000", .type = SCOMM_PARAM_INT,
     .min = 1, .max = INT64_MAX, SCOMM_PARAM_FIELD(timeout_ms),
     .help = "deadline in ms of every blocking call and wait (KV "
             "endpoints: 30000 unless set)"},
    {.name = "SCOMM_TRANSPORTS", .defval = "shm,tcp", .type = SCOMM_PARAM_LIST,
     .values = "shm,ofi,tcp", SCOMM_PARAM_FIELD(transports),
     .help = "transports allowed; per peer the first that reaches it, in "
             "the order shm, ofi (libfabric), tcp"},
    {.name = "SCOMM_SPIN_US", .defval = "200", .type = SCOMM_PARAM_INT,
     .min = 0, .max = 1000000, SCOMM_PARAM_FIELD(spin_us),
     .help = "microseconds a wait polls before it sleeps"},
    {.name = "SCOMM_CHECK", .defval = "0", .type = SCOMM_PARAM_BOOL,
     SCOMM_PARAM_FIELD(check),
     .help = "compare collective arguments across ranks"},
    {.name = "SCOMM_HEARTBEAT_MS", .defval = "1000", .type = SCOMM_PARAM_INT,
     .min = 1, .max = 86400000, SCOMM_PARAM_FIELD(heartbeat_ms),
     .help = "interval of liveness messages while a wait is long"},
    {.name = "SCOMM_HOST_ID", .defval = "", .type = SCOMM_PARAM_STRING,
     SCOMM_PARAM_FIELD(host_id),
     .help = "host identity: ranks with the same hostname and host id "
             "share a host (shm); default: the boot id. Different values "
             "per rank emulate several hosts on one machine (tcp between "
             "them)"},
    {.name = "SCOMM_CONF_FILE", .defval = "", .type = SCOMM_PARAM_STRING,
     .flags = SCOMM_PARAM_F_ENV_ONLY,
     .help = "file of SCOMM_NAME=value lines ('#' comments), below the "
             "environment and above presets and defaults"},
};

/* Core's hook: a communicator's shared memory and registrations
 * (shmem.c) go last, after every module above released its state. */
const scomm_module_t scomm_module_core = {
    .name         = "core",
    .params       = scomm_core_params,
    .nparams      = SCOMM_ARRAY_SIZE(scomm_core_params),
    .comm_release = scomm_shmem_comm_release,
};

/* ---- rows ---------------------------------------------------------------- */

static const scomm_param_t *scomm_param_find_exact(const char *name)
{
    const scomm_module_t *m;
    size_t i, j;

    for (i = 0; i < scomm_nmodules; i++) {
        m = scomm_modules[i];
        for (j = 0; j < m->nparams; j++) {
            if (strcmp(m->params[j].name, name) == 0) {
                return &m->params[j];
            }
        }
    }
    return NULL;
}

const scomm_param_t *scomm_param_find(const char *name)
{
    const scomm_param_t *p;
    char full[128];

    if (name == NULL) {
        return NULL;
    }
    p = scomm_param_find_exact(name);
    if ((p == NULL) && (strncmp(name, "SCOMM_", 6) != 0) &&
        ((size_t)snprintf(full, sizeof(full), "SCOMM_%s", name) <
         sizeof(full))) {
        p = scomm_param_find_exact(full);
    }
    return p;
}

/* Longest text a STRING or LIST row takes. */
static size_t scomm_param_maxlen(const scomm_param_t *p)
{
    if (p->size > 0) {
        return p->size - 1;
    }
    return (p->max > 0) ? (size_t)p->max : SCOMM_PARAM_TEXT_MAX;
}

/* "16k", "1g", or the number. */
static void scomm_param_fmt_size(uint64_t v, char *buf, size_t len)
{
    static const char units[] = "gmk";
    int i;

    for (i = 0; i < 3; i++) {
        uint64_t u = 1ull << (10 * (3 - i));

        if ((v != 0) && (v % u == 0)) {
            snprintf(buf, len, "%llu%c", (unsigned long long)(v / u),
                     units[i]);
            return;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* values with ", " between words. */
static void scomm_param_words(const char *values, char *buf, size_t len)
{
    size_t o = 0;
    const char *s;

    for (s = values; (*s != '\0') && (o + 3 < len); s++) {
        if (*s == ',') {
            buf[o++] = ',';
            buf[o++] = ' ';
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = '\0';
}

void scomm_param_accepts(const scomm_param_t *p, char *buf, size_t len)
{
    char lo[32], hi[32], words[512];

    switch (p->type) {
    case SCOMM_PARAM_INT:
        if ((p->min == INT64_MIN) && (p->max == INT64_MAX)) {
            snprintf(buf, len, "an integer");
        } else if (p->max == INT64_MAX) {
            snprintf(buf, len, "an integer >= %lld", (long long)p->min);
        } else {
            snprintf(buf, len, "an integer in %lld..%lld",
                     (long long)p->min, (long long)p->max);
        }
        break;
    case SCOMM_PARAM_SIZE:
        scomm_param_fmt_size((uint64_t)p->min, lo, sizeof(lo));
        scomm_param_fmt_size((uint64_t)p->max, hi, sizeof(hi));
        if ((p->max == INT64_MAX) && (p->min == 0)) {
            snprintf(buf, len, "a size (bytes; k, m, g suffixes)");
        } else if (p->max == INT64_MAX) {
            snprintf(buf, len, "a size >= %s (bytes; k, m, g suffixes)", lo);
        } else {
            snprintf(buf, len, "a size in %s..%s (bytes; k, m, g suffixes)",
                     lo, hi);
        }
        break;
    case SCOMM_PARAM_BOOL:
        snprintf(buf, len, "a boolean (1/0, y/n, yes/no, true/false, "
                 "on/off)");
        break;
    case SCOMM_PARAM_ENUM:
        scomm_param_words(p->values, words, sizeof(words));
        snprintf(buf, len, "one of %s", words);
        break;
    case SCOMM_PARAM_STRING:
        snprintf(buf, len, "a string of at most %zu bytes",
                 scomm_param_maxlen(p));
        break;
    case SCOMM_PARAM_LIST:
        scomm_param_words(p->values, words, sizeof(words));
        snprintf(buf, len, "a comma list of %s%s", words,
                 (p->flags & SCOMM_PARAM_F_CARET)
                     ? " (a leading ^: all but those)" : "");
        break;
    }
}

/* Index of word w (n bytes) among p->values' words, any case; -1 if none. */
static int scomm_param_word(const scomm_param_t *p, const char *w, size_t n)
{
    const char *s = p->values, *e;
    int idx = 0;

    while (*s != '\0') {
        e = s + strcspn(s, ",|");
        if (((size_t)(e - s) == n) && (strncasecmp(s, w, n) == 0)) {
            return idx;
        }
        if (*e == ',') {
            idx++;
        }
        s = (*e != '\0') ? e + 1 : e;
    }
    return -1;
}

/* 0 when every comma- or space-separated word of text is one of p's. */
static int scomm_param_list_ok(const scomm_param_t *p, const char *text,
                               const char **bad, size_t *badlen)
{
    const char *s = text;
    size_t n;

    if ((p->flags & SCOMM_PARAM_F_CARET) && (*s == '^')) {
        s++;
    }
    while (*s != '\0') {
        n = strcspn(s, ", ");
        if ((n > 0) && (scomm_param_word(p, s, n) < 0)) {
            *bad    = s;
            *badlen = n;
            return -1;
        }
        s += n;
        s += strspn(s, ", ");
    }
    return 0;
}

/* Parse text for p into v (text, i, u). where names the source. */
static scomm_status_t scomm_param_parse(const scomm_param_t *p,
                                        const char *text, const char *where,
                                        scomm_pval_t *v, char *err,
                                        size_t errlen)
{
    char acc[600];
    const char *bad = NULL;
    size_t badlen   = 0;
    char *end       = NULL;
    long long iv;
    uint64_t sv;
    int ok = 1;

    v->text = text;
    v->i    = 0;
    v->u    = 0;
    if (text[0] == '\0') {
        return SCOMM_OK; /* no value (a default of "") */
    }
    switch (p->type) {
    case SCOMM_PARAM_INT:
        errno = 0;
        iv    = strtoll(text, &end, 10);
        ok    = (errno == 0) && (end != text) && (*end == '\0') &&
                (iv >= p->min) && (iv <= p->max);
        v->i  = iv;
        break;
    case SCOMM_PARAM_SIZE:
        ok   = (scomm_parse_size(text, &sv) == 0) &&
               (sv >= (uint64_t)p->min) && (sv <= (uint64_t)p->max);
        v->u = sv;
        break;
    case SCOMM_PARAM_BOOL:
        v->i = scomm_parse_bool(text);
        ok   = (v->i >= 0);
        break;
    case SCOMM_PARAM_ENUM:
        v->i = scomm_param_word(p, text, strlen(text));
        ok   = (v->i >= 0);
        break;
    case SCOMM_PARAM_STRING:
    case SCOMM_PARAM_LIST:
        if (strlen(text) > scomm_param_maxlen(p)) {
            snprintf(err, errlen, "%s: %s is longer than %zu bytes", where,
                     p->name, scomm_param_maxlen(p));
            return SCOMM_ERR_BAD_CONFIG;
        }
        if ((p->type == SCOMM_PARAM_LIST) &&
            (scomm_param_list_ok(p, text, &bad, &badlen) != 0)) {
            scomm_param_accepts(p, acc, sizeof(acc));
            snprintf(err, errlen, "%s: %s='%.200s': '%.*s' is unknown; "
                     "expected %s", where, p->name, text,
                     (int)SCOMM_MIN(badlen, 64), bad, acc);
            return SCOMM_ERR_BAD_CONFIG;
        }
        break;
    }
    if (!ok) {
        scomm_param_accepts(p, acc, sizeof(acc));
        snprintf(err, errlen, "%s: %s='%.200s' is not %s", where, p->name,
                 text, acc);
        return SCOMM_ERR_BAD_CONFIG;
    }
    return SCOMM_OK;
}

/* Store v in cfg's field for p. */
static void scomm_param_store(scomm_config_t *cfg, const scomm_param_t *p,
                              const scomm_pval_t *v)
{
    char *field = (char *)cfg + p->offset;

    switch (p->type) {
    case SCOMM_PARAM_INT:
    case SCOMM_PARAM_BOOL:
    case SCOMM_PARAM_ENUM:
        *(int64_t *)(void *)field = v->i;
        break;
    case SCOMM_PARAM_SIZE:
        *(uint64_t *)(void *)field = v->u;
        break;
    case SCOMM_PARAM_STRING:
    case SCOMM_PARAM_LIST:
        snprintf(field, p->size, "%s", v->text);
        break;
    }
}

/* ---- SCOMM_CONF_FILE ----------------------------------------------------- */

typedef struct scomm_conf_ent {
    const scomm_param_t *p;
    char                *value;
    int                  line;
} scomm_conf_ent_t;

typedef struct scomm_conf {
    struct scomm_conf *older; /* kept: values handed out stay valid */
    char              *path;
    struct stat        st;
    int                have_st;
    int                stale;  /* read again on next use */
    scomm_status_t     status;
    char               err[512];
    scomm_conf_ent_t  *ent;
    size_t             n, cap;
} scomm_conf_t;

static pthread_mutex_t scomm_conf_lock = PTHREAD_MUTEX_INITIALIZER;
static scomm_conf_t *scomm_conf_cur;

static int scomm_conf_add(scomm_conf_t *c, const scomm_param_t *p,
                          const char *value, int line)
{
    scomm_conf_ent_t *ne;
    char *dup;

    if (c->n == c->cap) {
        ne = realloc(c->ent, (c->cap * 2 + 8) * sizeof(*ne));
        if (ne == NULL) {
            return -1;
        }
        c->ent = ne;
        c->cap = c->cap * 2 + 8;
    }
    dup = strdup(value);
    if (dup == NULL) {
        return -1;
    }
    c->ent[c->n].p     = p;
    c->ent[c->n].value = dup;
    c->ent[c->n].line  = line;
    c->n++;
    return 0;
}

/*
 * Read f's lines (named name in messages), checking each value; apply them
 * to cfg (rows with a field) when cfg is not NULL, record them in c when c
 * is not NULL. Stops at the first bad line.
 */
static scomm_status_t scomm_conf_read(FILE *f, const char *name,
                                      scomm_config_t *cfg, scomm_conf_t *c,
                                      char *err, size_t errlen)
{
    char *line = NULL, where[600], full[128];
    size_t cap = 0;
    ssize_t got;
    const scomm_param_t *p;
    const char *near;
    scomm_status_t status = SCOMM_OK;
    scomm_pval_t v;
    char *key, *val, *eq, *e;
    int lineno = 0;

    /* getline, not fgets: a long line must not be split, or its tail would
     * be read as a setting of its own. */
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (got > 4096) {
            snprintf(err, errlen, "%s:%d:1: line longer than 4096 bytes",
                     name, lineno);
            status = SCOMM_ERR_BAD_CONFIG;
            break;
        }
        key = line;
        while (isspace((unsigned char)*key)) {
            key++;
        }
        if ((*key == '#') || (*key == '\0')) {
            continue;
        }
        e = key + strlen(key);
        while ((e > key) && isspace((unsigned char)e[-1])) {
            *--e = '\0';
        }
        eq = strchr(key, '=');
        snprintf(where, sizeof(where), "%.500s:%d", name, lineno);
        if (eq == NULL) {
            snprintf(err, errlen, "%s:1: expected SCOMM_NAME=value", where);
            status = SCOMM_ERR_BAD_CONFIG;
            break;
        }
        *eq = '\0';
        val = eq + 1;
        snprintf(full, sizeof(full), "%s%.100s",
                 (strncmp(key, "SCOMM_", 6) == 0) ? "" : "SCOMM_", key);
        p = scomm_param_find_exact(full);
        if (p == NULL) {
            near = scomm_param_closest(full);
            snprintf(err, errlen, "%s:1: unknown variable %s%s%s%s", where,
                     full, (near != NULL) ? " (did you mean " : "",
                     (near != NULL) ? near : "", (near != NULL) ? "?)" : "");
            status = SCOMM_ERR_BAD_CONFIG;
            break;
        }
        if (p->flags & SCOMM_PARAM_F_ENV_ONLY) {
            snprintf(err, errlen, "%s:1: %s is read from the environment "
                     "only", where, p->name);
            status = SCOMM_ERR_BAD_CONFIG;
            break;
        }
        if (val[0] == '\0') {
            /* unset: what is below the file applies */
        } else if ((status = scomm_param_parse(p, val, where, &v, err,
                                               errlen)) != SCOMM_OK) {
            break;
        } else if ((cfg != NULL) && (p->size > 0)) {
            scomm_param_store(cfg, p, &v);
        }
        if ((c != NULL) && (scomm_conf_add(c, p, val, lineno) != 0)) {
            snprintf(err, errlen, "%s: out of memory", where);
            status = SCOMM_ERR_NO_MEMORY;
            break;
        }
    }
    free(line);
    return status;
}

static int scomm_conf_same(const scomm_conf_t *c, const char *path,
                           const struct stat *st, int have_st)
{
    return (strcmp(c->path, path) == 0) && (c->have_st == have_st) &&
           (!have_st ||
            ((c->st.st_dev == st->st_dev) && (c->st.st_ino == st->st_ino) &&
             (c->st.st_size == st->st_size) &&
             (c->st.st_mtim.tv_sec == st->st_mtim.tv_sec) &&
             (c->st.st_mtim.tv_nsec == st->st_mtim.tv_nsec)));
}

/* The file at path, parsed (again if it changed). Lock held. NULL when out
 * of memory. */
static scomm_conf_t *scomm_conf_get(const char *path)
{
    struct stat st;
    scomm_conf_t *c;
    int have_st = (stat(path, &st) == 0);
    FILE *f;

    c = scomm_conf_cur;
    if ((c != NULL) && !c->stale && scomm_conf_same(c, path, &st, have_st)) {
        return c;
    }
    c = calloc(1, sizeof(*c));
    if ((c == NULL) || ((c->path = strdup(path)) == NULL)) {
        free(c);
        return NULL;
    }
    c->have_st = have_st;
    if (have_st) {
        c->st = st;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(c->err, sizeof(c->err), "SCOMM_CONF_FILE %.400s: cannot "
                 "open: %s", path, strerror(errno));
        c->status = SCOMM_ERR_BAD_CONFIG;
    } else {
        c->status = scomm_conf_read(f, path, NULL, c, c->err,
                                    sizeof(c->err));
        fclose(f);
    }
    c->older       = scomm_conf_cur;
    scomm_conf_cur = c;
    return c;
}

/* ---- lookups ------------------------------------------------------------- */

static scomm_status_t scomm_param_resolve(const scomm_param_t *p,
                                          const scomm_param_layer_t *preset,
                                          scomm_pval_t *v, char *err,
                                          size_t errlen)
{
    scomm_param_src_t src = SCOMM_PARAM_SRC_DEFAULT;
    const char *text = NULL, *path;
    char where[600] = "";
    scomm_status_t status;
    scomm_conf_t *c;
    scomm_pval_t nv;
    size_t i;
    int k;

    if (scomm_param_parse(p, p->defval, "default", v, err, errlen) !=
        SCOMM_OK) {
        return SCOMM_ERR_INTERNAL; /* a unit test parses every default */
    }
    v->src = SCOMM_PARAM_SRC_DEFAULT;
    text   = getenv(p->name);
    if ((text != NULL) && (text[0] != '\0')) {
        src = SCOMM_PARAM_SRC_ENV;
        snprintf(where, sizeof(where), "environment");
    } else {
        text = NULL;
        path = getenv("SCOMM_CONF_FILE");
        if (!(p->flags & SCOMM_PARAM_F_ENV_ONLY) && (path != NULL) &&
            (path[0] != '\0')) {
            pthread_mutex_lock(&scomm_conf_lock);
            c = scomm_conf_get(path);
            if ((c == NULL) || (c->status != SCOMM_OK)) {
                status = (c == NULL) ? SCOMM_ERR_NO_MEMORY : c->status;
                snprintf(err, errlen, "%s", (c == NULL) ?
                         "SCOMM_CONF_FILE: out of memory" : c->err);
                pthread_mutex_unlock(&scomm_conf_lock);
                return status;
            }
            for (i = c->n; i > 0; i--) {
                if (c->ent[i - 1].p == p) {
                    if (c->ent[i - 1].value[0] != '\0') {
                        text = c->ent[i - 1].value;
                        src  = SCOMM_PARAM_SRC_FILE;
                        snprintf(where, sizeof(where), "%.500s:%d", c->path,
                                 c->ent[i - 1].line);
                    }
                    break;
                }
            }
            pthread_mutex_unlock(&scomm_conf_lock);
        }
    }
    for (k = 0; (text == NULL) && (preset != NULL) && (k < preset->n); k++) {
        if ((strcmp(preset->v[k].param, p->name) == 0) &&
            (preset->v[k].value[0] != '\0')) {
            text = preset->v[k].value;
            src  = SCOMM_PARAM_SRC_PRESET;
            snprintf(where, sizeof(where), "%s", preset->name);
        }
    }
    if (text == NULL) {
        return SCOMM_OK;
    }
    status = scomm_param_parse(p, text, where, &nv, err, errlen);
    if (status != SCOMM_OK) {
        return status;
    }
    *v     = nv;
    v->src = src;
    return SCOMM_OK;
}

scomm_status_t scomm_param_get(const char *name,
                               const scomm_param_layer_t *preset,
                               scomm_pval_t *v, char *err, size_t errlen)
{
    const scomm_param_t *p = scomm_param_find(name);

    if (p == NULL) {
        memset(v, 0, sizeof(*v));
        v->text = "";
        snprintf(err, errlen, "internal error: %s is in no module's table "
                 "(core/module.h)", (name != NULL) ? name : "(null)");
        return SCOMM_ERR_INTERNAL;
    }
    return scomm_param_resolve(p, preset, v, err, errlen);
}

void scomm_param_get_or_warn(const char *name, scomm_pval_t *v)
{
    char err[512];

    if (scomm_param_get(name, NULL, v, err, sizeof(err)) != SCOMM_OK) {
        scomm_warn(SCOMM_SUB_ENV, "%s; %s%s%s", err,
                   (v->text[0] != '\0') ? "using the default '" : "ignored",
                   v->text, (v->text[0] != '\0') ? "'" : "");
    }
}

scomm_status_t scomm_param_check(const char *name, const char *value,
                                 const char *where, scomm_pval_t *v,
                                 char *err, size_t errlen)
{
    const scomm_param_t *p = scomm_param_find(name);
    scomm_status_t status;

    if (p == NULL) {
        snprintf(err, errlen, "internal error: %s is in no module's table "
                 "(core/module.h)", (name != NULL) ? name : "(null)");
        return SCOMM_ERR_INTERNAL;
    }
    if ((value == NULL) || (value[0] == '\0')) {
        snprintf(err, errlen, "%s: %s needs a value", where, p->name);
        return SCOMM_ERR_BAD_CONFIG;
    }
    status = scomm_param_parse(p, value, where, v, err, errlen);
    v->src = SCOMM_PARAM_SRC_API;
    return status;
}

/* ---- unknown variables --------------------------------------------------- */

/* Edit distance of a and b (at most 63 bytes each are compared). */
static size_t scomm_param_distance(const char *a, const char *b)
{
    size_t row[64], la = SCOMM_MIN(strlen(a), 63), lb;
    size_t i, j, diag, up;

    lb = SCOMM_MIN(strlen(b), 63);
    for (j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (i = 1; i <= la; i++) {
        diag   = row[0];
        row[0] = i;
        for (j = 1; j <= lb; j++) {
            up     = row[j];
            row[j] = SCOMM_MIN(SCOMM_MIN(row[j] + 1, row[j - 1] + 1),
                               diag + (a[i - 1] != b[j - 1]));
            diag   = up;
        }
    }
    return row[lb];
}

const char *scomm_param_closest(const char *name)
{
    const scomm_param_t *best = NULL;
    const scomm_module_t *m;
    size_t i, j, d, bestd = SIZE_MAX, len = strlen(name);

    for (i = 0; i < scomm_nmodules; i++) {
        m = scomm_modules[i];
        for (j = 0; j < m->nparams; j++) {
            if (strncmp(m->params[j].name, "SCOMM_", 6) != 0) {
                continue;
            }
            d = scomm_param_distance(name, m->params[j].name);
            if (d < bestd) {
                bestd = d;
                best  = &m->params[j];
            }
        }
    }
    /* A typo: a few edits, fewer than a third of the name's own part. */
    len = (len > 6) ? len - 6 : 0;
    return ((best != NULL) && (bestd <= SCOMM_MAX((size_t)2, len / 3)))
               ? best->name : NULL;
}

static void scomm_config_do_check_env(void)
{
    extern char **environ;
    const char *near;
    char name[128];
    char **e;
    size_t n;

    for (e = environ; *e != NULL; e++) {
        if (strncmp(*e, "SCOMM_", 6) != 0) {
            continue;
        }
        n = strcspn(*e, "=");
        if (n >= sizeof(name)) {
            n = sizeof(name) - 1;
        }
        memcpy(name, *e, n);
        name[n] = '\0';
        if (scomm_param_find_exact(name) != NULL) {
            continue;
        }
        near = scomm_param_closest(name);
        if (near != NULL) {
            scomm_warn(SCOMM_SUB_ENV, "unknown variable %s ignored; did you "
                       "mean %s?", name, near);
        } else {
            scomm_warn(SCOMM_SUB_ENV, "unknown variable %s ignored (`scomm "
                       "info -c` lists the known ones)", name);
        }
    }
}

/* Once per process (pthread_once: mock ranks are threads calling
 * scomm_init at the same time). */
void scomm_config_check_env(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, scomm_config_do_check_env);
}

/* ---- the world's knobs --------------------------------------------------- */

scomm_status_t scomm_config_set(scomm_config_t *cfg, const char *name,
                                const char *value, char *err, size_t errlen)
{
    const scomm_param_t *p = scomm_param_find(name);
    scomm_status_t status;
    scomm_pval_t v;

    if ((p == NULL) || (p->size == 0)) {
        snprintf(err, errlen, "%s '%.100s' is not a knob of scomm_init",
                 (p == NULL) ? "unknown parameter" : "parameter",
                 (name != NULL) ? name : "(null)");
        return SCOMM_ERR_INVALID_ARG;
    }
    /* An empty value is no value: the default (config.h, invariant 3). */
    status = scomm_param_parse(p, ((value != NULL) && (value[0] != '\0'))
                                      ? value : p->defval,
                               "api", &v, err, errlen);
    if (status == SCOMM_OK) {
        scomm_param_store(cfg, p, &v);
    }
    return status;
}

scomm_status_t scomm_config_parse_stream(scomm_config_t *cfg, FILE *f,
                                         const char *name, char *err,
                                         size_t errlen)
{
    return scomm_conf_read(f, name, cfg, NULL, err, errlen);
}

scomm_status_t scomm_config_load(scomm_config_t *cfg, char *err,
                                 size_t errlen)
{
    const scomm_module_t *m;
    const scomm_param_t *p;
    scomm_status_t status;
    scomm_pval_t v;
    size_t i, j;

    memset(cfg, 0, sizeof(*cfg));
    pthread_mutex_lock(&scomm_conf_lock);
    if (scomm_conf_cur != NULL) {
        scomm_conf_cur->stale = 1; /* a world reads the file as it is now */
    }
    pthread_mutex_unlock(&scomm_conf_lock);
    for (i = 0; i < scomm_nmodules; i++) {
        m = scomm_modules[i];
        for (j = 0; j < m->nparams; j++) {
            p = &m->params[j];
            if (p->size == 0) {
                continue;
            }
            status = scomm_param_resolve(p, NULL, &v, err, errlen);
            if (status != SCOMM_OK) {
                return status;
            }
            scomm_param_store(cfg, p, &v);
            if (v.src >= SCOMM_PARAM_SRC_FILE) {
                scomm_info(SCOMM_SUB_ENV, "%s set to %s", p->name, v.text);
            }
        }
    }
    if (cfg->shm_eager_max > cfg->shm_ring_size / 4) {
        cfg->shm_eager_max = cfg->shm_ring_size / 4;
    }
    scomm_config_check_env();
    return SCOMM_OK;
}
