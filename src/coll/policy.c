/*
 * policy.c - the selector's policy file (SCOMM_SELECTOR_CONFIG): JSON rules
 * that choose a collective's algorithm before the default rules do.
 *
 *   {
 *     "version": 1,
 *     "rules": [
 *       {"id": "small-rd", "op": "all_reduce", "max_bytes": "64k",
 *        "algo": "recursive_doubling"},
 *       {"id": "tcp-ring", "op": "all_reduce", "min_bytes": "1m",
 *        "transport": "tcp", "min_ranks": 4, "algo": "ring"}
 *     ]
 *   }
 *
 * A rule matches a call when every condition it names holds; the first
 * matching rule wins. Conditions: "op" (required; an operation name as in
 * scomm_coll_op_name, or "*"), "min_bytes"/"max_bytes" (inclusive; the
 * bytes the default rules look at: the vector for all_reduce, broadcast,
 * reduce, all_to_all; the whole gathered or scattered vector for
 * all_gather and reduce_scatter; a number or a size string "64k", "1m"),
 * "min_ranks"/"max_ranks", "pow2" (rank count a power of two),
 * "all_local" (every rank on this host), "transport" ("shm": every peer
 * over shared memory, "tcp": some peer over tcp, "mock", "any").
 * "algo" (required) must name an algorithm of "op" (or, for "*", of some
 * op: the rule then applies to the ops that have it). "id" (optional,
 * default "rule<N>") becomes the record's selection_rule_id "policy:<id>".
 *
 * A file that `scomm tune` wrote (tuned.c) also has a top-level
 * "machine" object saying what it was measured on: {"cpu": "...",
 * "world_size": 2, "local_size": 2, "transports": "shm", "scomm_version":
 * "0.1.0"}, all five required there; the loader of the tuned cache
 * compares it with the run, SCOMM_SELECTOR_CONFIG ignores it.
 *
 * Errors name the file and, for syntax, the line and column (jansson's);
 * for a bad value, the rule by index and the key. Unknown keys are errors:
 * a typo must not silently turn a rule into a wider one. They are
 * SCOMM_ERR_BAD_CONFIG; a build without jansson (SCOMM_HAVE_JANSSON
 * undefined) reads no policy file and answers SCOMM_ERR_UNSUPPORTED,
 * naming the package to install (core/features.h).
 */
#include <errno.h>
#ifdef SCOMM_HAVE_JANSSON
#include <jansson.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/features.h"
#include "../core/util.h"
#include "coll.h"

#define POLICY_MAX_RULES 256

static int policy_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int policy_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return SCOMM_ERR_BAD_CONFIG;
}

#ifdef SCOMM_HAVE_JANSSON
static const char *const policy_keys[] = {
    "id", "op", "algo", "min_bytes", "max_bytes", "min_ranks", "max_ranks",
    "pow2", "all_local", "transport"
};

/* A byte count: a non-negative integer or a size string ("64k"). */
static int policy_bytes(const json_t *v, uint64_t *out)
{
    json_int_t i;

    if (json_is_integer(v)) {
        i = json_integer_value(v);
        if (i < 0) {
            return -1;
        }
        *out = (uint64_t)i;
        return 0;
    }
    if (json_is_string(v)) {
        return scomm_parse_size(json_string_value(v), out);
    }
    return -1;
}

static int policy_int(const json_t *v, int lo, int hi, int *out)
{
    json_int_t i;

    if (!json_is_integer(v)) {
        return -1;
    }
    i = json_integer_value(v);
    if ((i < lo) || (i > hi)) {
        return -1;
    }
    *out = (int)i;
    return 0;
}

static int policy_op(const char *name)
{
    int op;

    if (strcmp(name, "*") == 0) {
        return -1;
    }
    for (op = 0; op < SCOMM_COLL_OP_COUNT; op++) {
        if (strcmp(name, scomm_coll_op_name((scomm_coll_op_t)op)) == 0) {
            return op;
        }
    }
    return -2;
}

static int policy_known_key(const char *key)
{
    size_t i;

    for (i = 0; i < SCOMM_ARRAY_SIZE(policy_keys); i++) {
        if (strcmp(key, policy_keys[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static int policy_rule(const char *path, size_t idx, json_t *o,
                       scomm_coll_policy_rule_t *r, char *err, size_t errlen)
{
    const char *key, *s;
    json_t *v;
    int op, found;

    memset(r, 0, sizeof(*r));
    r->op        = -1;
    r->max_bytes = UINT64_MAX;
    r->max_ranks = 1 << 30;
    r->pow2      = -1;
    r->all_local = -1;
    r->transport = SCOMM_COLL_POLICY_TL_ANY;
    snprintf(r->id, sizeof(r->id), "rule%zu", idx);
    if (!json_is_object(o)) {
        return policy_err(err, errlen, "%s: rules[%zu] is not an object",
                          path, idx);
    }
    json_object_foreach(o, key, v) {
        if (!policy_known_key(key)) {
            return policy_err(err, errlen, "%s: rules[%zu]: unknown key "
                              "'%.40s' (known: id, op, algo, min_bytes, "
                              "max_bytes, min_ranks, max_ranks, pow2, "
                              "all_local, transport)", path, idx, key);
        }
    }
    v = json_object_get(o, "id");
    if (v != NULL) {
        s = json_is_string(v) ? json_string_value(v) : NULL;
        if ((s == NULL) || (s[0] == '\0') || (strlen(s) >= sizeof(r->id))) {
            return policy_err(err, errlen, "%s: rules[%zu].id must be a "
                              "string of 1..%zu characters", path, idx,
                              sizeof(r->id) - 1);
        }
        snprintf(r->id, sizeof(r->id), "%s", s);
    }
    v = json_object_get(o, "op");
    s = json_is_string(v) ? json_string_value(v) : NULL;
    op = (s != NULL) ? policy_op(s) : -2;
    if (op == -2) {
        return policy_err(err, errlen, "%s: rules[%zu] ('%s').op must be an "
                          "operation name (all_reduce, all_gather, "
                          "reduce_scatter, broadcast, reduce, all_to_all, "
                          "all_to_allv, gather, scatter) or \"*\"", path,
                          idx, r->id);
    }
    r->op = op;
    v = json_object_get(o, "algo");
    s = json_is_string(v) ? json_string_value(v) : NULL;
    if ((s == NULL) || (strlen(s) >= sizeof(r->algo))) {
        return policy_err(err, errlen, "%s: rules[%zu] ('%s').algo must be "
                          "an algorithm name", path, idx, r->id);
    }
    snprintf(r->algo, sizeof(r->algo), "%s", s);
    found = 0;
    for (op = 0; op < SCOMM_COLL_OP_COUNT; op++) {
        if (((r->op < 0) || (r->op == op)) &&
            (scomm_coll_algo_index((scomm_coll_op_t)op, s) >= 0)) {
            found = 1;
        }
    }
    if (!found) {
        return policy_err(err, errlen, "%s: rules[%zu] ('%s').algo: '%s' is "
                          "not an algorithm of %s", path, idx, r->id, s,
                          (r->op < 0) ? "any operation" :
                          scomm_coll_op_name((scomm_coll_op_t)r->op));
    }
    if (((v = json_object_get(o, "min_bytes")) != NULL) &&
        (policy_bytes(v, &r->min_bytes) != 0)) {
        return policy_err(err, errlen, "%s: rules[%zu] ('%s').min_bytes must "
                          "be a byte count (1024, \"64k\")", path, idx,
                          r->id);
    }
    if (((v = json_object_get(o, "max_bytes")) != NULL) &&
        (policy_bytes(v, &r->max_bytes) != 0)) {
        return policy_err(err, errlen, "%s: rules[%zu] ('%s').max_bytes must "
                          "be a byte count (1024, \"64k\")", path, idx,
                          r->id);
    }
    if (r->min_bytes > r->max_bytes) {
        return policy_err(err, errlen, "%s: rules[%zu] ('%s'): min_bytes %llu "
                          "> max_bytes %llu", path, idx, r->id,
                          (unsigned long long)r->min_bytes,
                          (unsigned long long)r->max_bytes);
    }
    if (((v = json_object_get(o, "min_ranks")) != NULL) &&
        (policy_int(v, 1, 1 << 30, &r->min_ranks) != 0)) {
        return policy_err(err, errlen, "%s: rules[%zu] ('%s').min_ranks must "
                          "be an integer >= 1", path, idx, r->id);
    }
    if (((v = json_object_get(o, "max_ranks")) != NULL) &&
        (policy_int(v, 1, 1 << 30, &r->max_ranks) != 0)) {
        return policy_err(err, errlen, "%s: rules[%zu] ('%s').max_ranks must "
                          "be an integer >= 1", path, idx, r->id);
    }
    if (r->min_ranks > r->max_ranks) {
        return policy_err(err, errlen, "%s: rules[%zu] ('%s'): min_ranks %d > "
                          "max_ranks %d", path, idx, r->id, r->min_ranks,
                          r->max_ranks);
    }
    if ((v = json_object_get(o, "pow2")) != NULL) {
        if (!json_is_boolean(v)) {
            return policy_err(err, errlen, "%s: rules[%zu] ('%s').pow2 must "
                              "be true or false", path, idx, r->id);
        }
        r->pow2 = json_is_true(v);
    }
    if ((v = json_object_get(o, "all_local")) != NULL) {
        if (!json_is_boolean(v)) {
            return policy_err(err, errlen, "%s: rules[%zu] ('%s').all_local "
                              "must be true or false", path, idx, r->id);
        }
        r->all_local = json_is_true(v);
    }
    if ((v = json_object_get(o, "transport")) != NULL) {
        s = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(s, "shm") == 0) {
            r->transport = SCOMM_COLL_POLICY_TL_SHM;
        } else if (strcmp(s, "tcp") == 0) {
            r->transport = SCOMM_COLL_POLICY_TL_TCP;
        } else if (strcmp(s, "mock") == 0) {
            r->transport = SCOMM_COLL_POLICY_TL_MOCK;
        } else if (strcmp(s, "any") != 0) {
            return policy_err(err, errlen, "%s: rules[%zu] ('%s').transport "
                              "must be \"shm\", \"tcp\", \"mock\" or "
                              "\"any\"", path, idx, r->id);
        }
    }
    return 0;
}

/* A string member of the machine block into out; -1 if not one. */
static int policy_mstr(json_t *m, const char *key, char *out, size_t len)
{
    json_t *v = json_object_get(m, key);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;

    if ((s == NULL) || (strlen(s) >= len)) {
        return -1;
    }
    snprintf(out, len, "%s", s);
    return 0;
}

static int policy_machine(const char *path, json_t *m,
                          scomm_coll_tune_key_t *k, char *err, size_t errlen)
{
    static const char *const keys[] = {"cpu", "world_size", "local_size",
                                       "transports", "scomm_version"};
    const char *key;
    json_t *v;
    size_t i;
    int known;

    if (!json_is_object(m)) {
        return policy_err(err, errlen, "%s: \"machine\" must be an object",
                          path);
    }
    json_object_foreach(m, key, v) {
        for (i = 0, known = 0; i < SCOMM_ARRAY_SIZE(keys); i++) {
            known = known || (strcmp(key, keys[i]) == 0);
        }
        if (!known) {
            return policy_err(err, errlen, "%s: machine: unknown key "
                              "'%.40s' (known: cpu, world_size, local_size, "
                              "transports, scomm_version)", path, key);
        }
    }
    if ((policy_mstr(m, "cpu", k->cpu, sizeof(k->cpu)) != 0) ||
        (policy_mstr(m, "transports", k->transports,
                     sizeof(k->transports)) != 0) ||
        (policy_mstr(m, "scomm_version", k->version,
                     sizeof(k->version)) != 0) ||
        (policy_int(json_object_get(m, "world_size"), 1, 1 << 30,
                    &k->world_size) != 0) ||
        (policy_int(json_object_get(m, "local_size"), 1, 1 << 30,
                    &k->local_size) != 0)) {
        return policy_err(err, errlen, "%s: machine needs cpu, transports, "
                          "scomm_version (strings) and world_size, "
                          "local_size (integers >= 1)", path);
    }
    return 0;
}

int scomm_coll_policy_parse(const char *text, size_t len, const char *path,
                            scomm_coll_policy_t *pol, char *err,
                            size_t errlen)
{
    json_error_t jerr;
    json_t *root, *rules, *v;
    const char *key;
    size_t i, n;
    int rc = 0;

    memset(pol, 0, sizeof(*pol));
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        return policy_err(err, errlen, "%s:%d:%d: %s", path, jerr.line,
                          jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        rc = policy_err(err, errlen, "%s: the top level must be an object "
                        "{\"version\": 1, \"rules\": [...]}", path);
        goto out;
    }
    json_object_foreach(root, key, v) {
        if ((strcmp(key, "version") != 0) && (strcmp(key, "rules") != 0) &&
            (strcmp(key, "machine") != 0)) {
            rc = policy_err(err, errlen, "%s: unknown top-level key '%.40s' "
                            "(known: version, rules, machine)", path, key);
            goto out;
        }
    }
    v = json_object_get(root, "machine");
    if (v != NULL) {
        rc = policy_machine(path, v, &pol->machine, err, errlen);
        if (rc != 0) {
            goto out;
        }
        pol->has_machine = 1;
    }
    v = json_object_get(root, "version");
    if ((v != NULL) &&
        (!json_is_integer(v) || (json_integer_value(v) != 1))) {
        rc = policy_err(err, errlen, "%s: version must be 1", path);
        goto out;
    }
    rules = json_object_get(root, "rules");
    if (!json_is_array(rules)) {
        rc = policy_err(err, errlen, "%s: \"rules\" must be an array", path);
        goto out;
    }
    n = json_array_size(rules);
    if (n > POLICY_MAX_RULES) {
        rc = policy_err(err, errlen, "%s: %zu rules, at most %d", path, n,
                        POLICY_MAX_RULES);
        goto out;
    }
    pol->rules = calloc((n > 0) ? n : 1, sizeof(*pol->rules));
    if (pol->rules == NULL) {
        rc = policy_err(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (i = 0; i < n; i++) {
        rc = policy_rule(path, i, json_array_get(rules, i), &pol->rules[i],
                         err, errlen);
        if (rc != 0) {
            goto out;
        }
    }
    pol->n = (int)n;
    snprintf(pol->path, sizeof(pol->path), "%s", path);
out:
    json_decref(root);
    if (rc != 0) {
        scomm_coll_policy_free(pol);
    }
    return rc;
}
#else /* !SCOMM_HAVE_JANSSON */
int scomm_coll_policy_parse(const char *text, size_t len, const char *path,
                            scomm_coll_policy_t *pol, char *err,
                            size_t errlen)
{
    (void)text;
    (void)len;
    memset(pol, 0, sizeof(*pol));
    return scomm_feature_missing(SCOMM_FEATURE_JANSSON, err, errlen,
                                 "%s: a selector policy file (JSON)", path);
}
#endif /* SCOMM_HAVE_JANSSON */

int scomm_coll_policy_load(const char *path, scomm_coll_policy_t *pol,
                           char *err, size_t errlen)
{
    FILE *f;
    char *text;
    long len;
    size_t got;
    int rc;

    memset(pol, 0, sizeof(*pol));
    f = fopen(path, "rb");
    if (f == NULL) {
        return policy_err(err, errlen, "%s: cannot open: %s", path,
                          strerror(errno));
    }
    if ((fseek(f, 0, SEEK_END) != 0) || ((len = ftell(f)) < 0) ||
        (len > (1L << 20)) || (fseek(f, 0, SEEK_SET) != 0)) {
        fclose(f);
        return policy_err(err, errlen, "%s: not a readable file of at most "
                          "1 MiB", path);
    }
    text = malloc((size_t)len + 1);
    if (text == NULL) {
        fclose(f);
        return policy_err(err, errlen, "%s: out of memory", path);
    }
    got = fread(text, 1, (size_t)len, f);
    fclose(f);
    rc = scomm_coll_policy_parse(text, got, path, pol, err, errlen);
    free(text);
    return rc;
}

void scomm_coll_policy_free(scomm_coll_policy_t *pol)
{
    free(pol->rules);
    pol->rules       = NULL;
    pol->n           = 0;
    pol->has_machine = 0;
}

void scomm_coll_tune_key_diff(const scomm_coll_tune_key_t *file,
                              const scomm_coll_tune_key_t *k, char *out,
                              size_t len)
{
    out[0] = '\0';
    if (strcmp(file->cpu, k->cpu) != 0) {
        snprintf(out, len, "cpu '%s' (this run: '%s')", file->cpu, k->cpu);
    } else if (file->world_size != k->world_size) {
        snprintf(out, len, "world_size %d (this run: %d)", file->world_size,
                 k->world_size);
    } else if (file->local_size != k->local_size) {
        snprintf(out, len, "local_size %d (this run: %d)", file->local_size,
                 k->local_size);
    } else if (strcmp(file->transports, k->transports) != 0) {
        snprintf(out, len, "transports '%s' (this run: '%s')",
                 file->transports, k->transports);
    } else if (strcmp(file->version, k->version) != 0) {
        snprintf(out, len, "scomm_version '%s' (this run: '%s')",
                 file->version, k->version);
    }
}

const scomm_coll_policy_rule_t *
scomm_coll_policy_match(const scomm_coll_policy_t *pol, scomm_coll_op_t op,
                        uint64_t bytes, int p, int all_local, int tl)
{
    const scomm_coll_policy_rule_t *r;
    int i;

    for (i = 0; i < pol->n; i++) {
        r = &pol->rules[i];
        if (((r->op >= 0) && (r->op != (int)op)) ||
            (bytes < r->min_bytes) || (bytes > r->max_bytes) ||
            (p < r->min_ranks) || (p > r->max_ranks) ||
            ((r->pow2 >= 0) && (r->pow2 != scomm_coll_is_pow2(p))) ||
            ((r->all_local >= 0) && (r->all_local != all_local)) ||
            ((r->transport != SCOMM_COLL_POLICY_TL_ANY) &&
             (r->transport != tl)) ||
            (scomm_coll_algo_index(op, r->algo) < 0)) {
            continue;
        }
        return r;
    }
    return NULL;
}
