/*
 * topo_json.c - the topology as JSON (schema "scomm.topology/1", see
 * docs/topology.md): the host, optionally the world (ranks, hosts, the
 * link matrix, the seed's Link list) and the recommendation; and the host
 * read back from such a document (SCOMM_TOPO_FILE=*.json).
 *
 * Invariants:
 *  1. Writing then reading a host gives the same host (a unit test checks).
 *  2. The reader checks every field's type and range and names the field
 *     it refuses; strings longer than their fields are errors, not cut.
 *  3. The writer needs no library (a small emitter below, laid out as
 *     jansson's json_dumps with JSON_INDENT and JSON_REAL_PRECISION(6));
 *     its output is always valid JSON: strings escaped, bytes that are not
 *     UTF-8 written as '?', a number that is not finite written as null.
 *  4. The reader uses jansson; built without it (SCOMM_HAVE_JANSSON
 *     undefined) reading is SCOMM_ERR_UNSUPPORTED naming the package
 *     (core/features.h).
 */
#include "topo.h"

#ifdef SCOMM_HAVE_JANSSON
#include <jansson.h>
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/features.h"
#include "core/scomm_int.h"

#define SCOMM_TOPO_SCHEMA "scomm.topology/1"

/* ---- the emitter ---- */

typedef struct scomm_jw {
    char  *p;
    size_t len, cap;
    int    failed; /* out of memory: the text is dropped */
    int    indent; /* spaces per level; 0: one line */
    int    depth;
    int    empty;  /* nothing written yet in the innermost container */
} scomm_jw_t;

static void scomm_jw_put(scomm_jw_t *w, const char *s, size_t n)
{
    size_t cap;
    char *np;

    if (w->failed) {
        return;
    }
    if (w->len + n + 1 > w->cap) {
        cap = (w->cap > 0) ? w->cap : 4096;
        while ((cap < w->len + n + 1) && (cap < SIZE_MAX / 2)) {
            cap *= 2;
        }
        np = (cap >= w->len + n + 1) ? realloc(w->p, cap) : NULL;
        if (np == NULL) {
            w->failed = 1;
            return;
        }
        w->p   = np;
        w->cap = cap;
    }
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

static void scomm_jw_fmt(scomm_jw_t *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void scomm_jw_fmt(scomm_jw_t *w, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    scomm_jw_put(w, buf, ((n > 0) && ((size_t)n < sizeof(buf))) ? (size_t)n
                                                                  : 0);
}

static void scomm_jw_newline(scomm_jw_t *w, int depth)
{
    static const char spaces[] = "                                ";
    size_t n = (size_t)depth * (size_t)w->indent, k;

    scomm_jw_put(w, "\n", 1);
    for (; n > 0; n -= k) {
        k = SCOMM_MIN(n, sizeof(spaces) - 1);
        scomm_jw_put(w, spaces, k);
    }
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if none. */
static size_t scomm_jw_utf8(const unsigned char *s, size_t n)
{
    size_t len, i;
    unsigned lo = 0x80, hi = 0xbf;

    if (s[0] < 0x80) {
        return 1;
    }
    if ((s[0] >= 0xc2) && (s[0] <= 0xdf)) {
        len = 2;
    } else if ((s[0] >= 0xe0) && (s[0] <= 0xef)) {
        len = 3;
        lo  = (s[0] == 0xe0) ? 0xa0 : 0x80; /* no overlong form */
        hi  = (s[0] == 0xed) ? 0x9f : 0xbf; /* no surrogate */
    } else if ((s[0] >= 0xf0) && (s[0] <= 0xf4)) {
        len = 4;
        lo  = (s[0] == 0xf0) ? 0x90 : 0x80;
        hi  = (s[0] == 0xf4) ? 0x8f : 0xbf; /* nothing past U+10FFFF */
    } else {
        return 0;
    }
    if ((n < len) || (s[1] < lo) || (s[1] > hi)) {
        return 0;
    }
    for (i = 2; i < len; i++) {
        if ((s[i] < 0x80) || (s[i] > 0xbf)) {
            return 0;
        }
    }
    return len;
}

static void scomm_jw_string(scomm_jw_t *w, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), k;

    scomm_jw_put(w, "\"", 1);
    while (n > 0) {
        switch (s[0]) {
        case '"':  scomm_jw_put(w, "\\\"", 2); k = 1; break;
        case '\\': scomm_jw_put(w, "\\\\", 2); k = 1; break;
        case '\b': scomm_jw_put(w, "\\b", 2); k = 1; break;
        case '\f': scomm_jw_put(w, "\\f", 2); k = 1; break;
        case '\n': scomm_jw_put(w, "\\n", 2); k = 1; break;
        case '\r': scomm_jw_put(w, "\\r", 2); k = 1; break;
        case '\t': scomm_jw_put(w, "\\t", 2); k = 1; break;
        default:
            k = scomm_jw_utf8(s, n);
            if (k == 0) {
                scomm_jw_put(w, "?", 1);
                k = 1;
            } else if (s[0] < 0x20) {
                scomm_jw_fmt(w, "\\u%04X", s[0]);
            } else {
                scomm_jw_put(w, (const char *)s, k);
            }
            break;
        }
        s += k;
        n -= k;
    }
    scomm_jw_put(w, "\"", 1);
}

/* Start an item: the separator, and "key": inside an object. */
static void scomm_jw_item(scomm_jw_t *w, const char *key)
{
    if (w->depth > 0) {
        if (!w->empty) {
            scomm_jw_put(w, ",", 1);
        }
        if (w->indent > 0) {
            scomm_jw_newline(w, w->depth);
        } else if (!w->empty) {
            scomm_jw_put(w, " ", 1);
        }
    }
    w->empty = 0;
    if (key != NULL) {
        scomm_jw_string(w, key);
        scomm_jw_put(w, ": ", 2);
    }
}

/* '{' or '[' as an item named key (NULL inside an array). */
static void scomm_jw_open(scomm_jw_t *w, const char *key, char bracket)
{
    scomm_jw_item(w, key);
    scomm_jw_put(w, &bracket, 1);
    w->depth++;
    w->empty = 1;
}

static void scomm_jw_close(scomm_jw_t *w, char bracket)
{
    w->depth--;
    if (!w->empty && (w->indent > 0)) {
        scomm_jw_newline(w, w->depth);
    }
    scomm_jw_put(w, &bracket, 1);
    w->empty = 0;
}

/* value NULL: null */
static void scomm_jw_str(scomm_jw_t *w, const char *key, const char *value)
{
    scomm_jw_item(w, key);
    if (value == NULL) {
        scomm_jw_put(w, "null", 4);
    } else {
        scomm_jw_string(w, value);
    }
}

static void scomm_jw_int(scomm_jw_t *w, const char *key, long long value)
{
    scomm_jw_item(w, key);
    scomm_jw_fmt(w, "%lld", value);
}

static void scomm_jw_bool(scomm_jw_t *w, const char *key, int value)
{
    scomm_jw_item(w, key);
    scomm_jw_put(w, value ? "true" : "false", value ? 4 : 5);
}

/* Six significant digits, always with a '.' or an exponent, exponent
 * without '+' or leading zeros (as jansson prints a real). */
static void scomm_jw_real(scomm_jw_t *w, const char *key, double value)
{
    char buf[40], *e, *d;

    scomm_jw_item(w, key);
    if (!isfinite(value)) {
        scomm_jw_put(w, "null", 4);
        return;
    }
    snprintf(buf, sizeof(buf) - 2, "%.6g", value);
    if (strpbrk(buf, ".e") == NULL) {
        strcat(buf, ".0");
    }
    e = strchr(buf, 'e');
    if (e != NULL) {
        d = e + 1;
        if (*d == '-') {
            d++;
        }
        e = d;
        while ((*e == '+') || (*e == '0')) {
            e++;
        }
        memmove(d, e, strlen(e) + 1);
    }
    scomm_jw_put(w, buf, strlen(buf));
}

/* ---- the document ---- */

static void scomm_cache_json(scomm_jw_t *w, const char *key,
                             const scomm_topo_cache_t *c)
{
    scomm_jw_open(w, key, '{');
    scomm_jw_int(w, "size", (long long)c->size);
    scomm_jw_int(w, "count", c->count);
    scomm_jw_close(w, '}');
}

static void scomm_host_json(scomm_jw_t *w, const scomm_topo_host_t *h)
{
    char id[64], hex[8];
    int i;

    scomm_jw_open(w, "host", '{');
    scomm_jw_str(w, "hostname", h->hostname);
    scomm_jw_str(w, "boot_id", h->boot_id);
    scomm_jw_str(w, "source", h->source);
    scomm_jw_str(w, "sysfs_root", h->sysfs_root);
    scomm_jw_open(w, "cpu", '{');
    scomm_jw_int(w, "packages", h->packages);
    scomm_jw_int(w, "numa_nodes", h->numa_nodes);
    scomm_jw_int(w, "cores", h->cores);
    scomm_jw_int(w, "pus", h->pus);
    scomm_jw_int(w, "memory_bytes", (long long)h->memory);
    scomm_jw_open(w, "caches", '{');
    scomm_cache_json(w, "l1d", &h->l1d);
    scomm_cache_json(w, "l1i", &h->l1i);
    scomm_cache_json(w, "l2", &h->l2);
    scomm_cache_json(w, "l3", &h->l3);
    scomm_jw_close(w, '}');
    scomm_jw_close(w, '}');
    scomm_jw_int(w, "pci_devices", h->pci_devices);
    scomm_jw_open(w, "accelerators", '[');
    for (i = 0; i < h->naccel; i++) {
        const scomm_topo_accel_t *d = &h->accel[i];

        scomm_jw_open(w, NULL, '{');
        snprintf(id, sizeof(id), "node0:%s:%d", d->type, i);
        scomm_jw_str(w, "id", id);
        scomm_jw_str(w, "vendor", d->vendor);
        scomm_jw_str(w, "type", d->type);
        scomm_jw_str(w, "model", d->model);
        snprintf(hex, sizeof(hex), "0x%04x", d->vendor_id);
        scomm_jw_str(w, "vendor_id", hex);
        snprintf(hex, sizeof(hex), "0x%04x", d->device_id);
        scomm_jw_str(w, "device_id", hex);
        scomm_jw_str(w, "pci", d->pci);
        scomm_jw_str(w, "pci_path", d->pci_path);
        scomm_jw_int(w, "numa", d->numa);
        scomm_jw_str(w, "fabric",
                     scomm_topo_link_name((scomm_link_kind_t)d->fabric));
        scomm_jw_int(w, "fabric_links", d->fabric_links);
        scomm_jw_real(w, "fabric_gbps", d->fabric_gbps);
        scomm_jw_real(w, "pcie_gbps", d->pcie_gbps);
        scomm_jw_close(w, '}');
    }
    scomm_jw_close(w, ']');
    scomm_jw_open(w, "nics", '[');
    for (i = 0; i < h->nnic; i++) {
        const scomm_topo_nic_t *n = &h->nic[i];

        scomm_jw_open(w, NULL, '{');
        scomm_jw_str(w, "name", n->name);
        scomm_jw_str(w, "netdev", n->netdev);
        scomm_jw_str(w, "kind",
                     scomm_topo_link_name((scomm_link_kind_t)n->kind));
        scomm_jw_str(w, "pci", n->pci);
        scomm_jw_str(w, "pci_path", n->pci_path);
        scomm_jw_int(w, "numa", n->numa);
        scomm_jw_real(w, "gbps", n->gbps);
        scomm_jw_bool(w, "up", n->up);
        scomm_jw_close(w, '}');
    }
    scomm_jw_close(w, ']');
    scomm_jw_open(w, "cxl", '[');
    for (i = 0; i < h->ncxl; i++) {
        const scomm_topo_cxl_t *c = &h->cxl[i];

        scomm_jw_open(w, NULL, '{');
        scomm_jw_str(w, "name", c->name);
        scomm_jw_str(w, "pci", c->pci);
        scomm_jw_int(w, "ram_bytes", (long long)c->ram_bytes);
        scomm_jw_int(w, "pmem_bytes", (long long)c->pmem_bytes);
        scomm_jw_int(w, "numa", c->numa);
        scomm_jw_close(w, '}');
    }
    scomm_jw_close(w, ']');
    scomm_jw_int(w, "nvswitches", h->nvswitches);
    scomm_jw_int(w, "ub_devices", h->ub_devices);
    scomm_jw_bool(w, "nvml", h->nvml);
    scomm_jw_close(w, '}');
}

static void scomm_rank_device(const scomm_topo_rank_t *r, char *out,
                              size_t len)
{
    if (r->accel >= 0) {
        snprintf(out, len, "node%d:%s", r->host_id, r->accel_id);
    } else {
        snprintf(out, len, "node%d:cpu:%d", r->host_id, r->local_rank);
    }
}

/* One n x n matrix of the link table, field f: 0 kind, 1 bandwidth,
 * 2 latency, 3 hops. */
static void scomm_matrix_json(scomm_jw_t *w, const char *key,
                              const scomm_topo_link_t *m, int n, int f)
{
    const scomm_topo_link_t *l;
    int i, j;

    scomm_jw_open(w, key, '[');
    for (i = 0; i < n; i++) {
        scomm_jw_open(w, NULL, '[');
        for (j = 0; j < n; j++) {
            l = &m[(size_t)i * n + j];
            switch (f) {
            case 0:
                scomm_jw_str(w, NULL, scomm_topo_link_info(
                                          (scomm_link_kind_t)l->kind)->name);
                break;
            case 1: scomm_jw_real(w, NULL, (double)l->gbps); break;
            case 2: scomm_jw_real(w, NULL, (double)l->lat_us); break;
            default: scomm_jw_int(w, NULL, l->hops); break;
            }
        }
        scomm_jw_close(w, ']');
    }
    scomm_jw_close(w, ']');
}

static void scomm_world_json(scomm_jw_t *w, const scomm_topo_rank_t *ranks,
                             int n, const scomm_topo_link_t *m, int nhosts)
{
    char dev[96], dev2[96];
    int i, j, h, first, count;

    scomm_jw_open(w, "world", '{');
    scomm_jw_int(w, "size", n);
    scomm_jw_open(w, "hosts", '[');
    for (h = 0; h < nhosts; h++) {
        for (first = -1, count = 0, i = 0; i < n; i++) {
            if (ranks[i].host_id == h) {
                first = (first < 0) ? i : first;
                count++;
            }
        }
        if (first < 0) {
            continue;
        }
        scomm_jw_open(w, NULL, '{');
        scomm_jw_int(w, "id", h);
        scomm_jw_str(w, "hostname", ranks[first].hostname);
        scomm_jw_str(w, "boot_id", ranks[first].boot_id);
        scomm_jw_int(w, "local_ranks", count);
        scomm_jw_open(w, "ranks", '[');
        for (i = first; i < n; i++) {
            if (ranks[i].host_id == h) {
                scomm_jw_int(w, NULL, ranks[i].rank);
            }
        }
        scomm_jw_close(w, ']');
        scomm_jw_close(w, '}');
    }
    scomm_jw_close(w, ']');
    scomm_jw_open(w, "ranks", '[');
    for (i = 0; i < n; i++) {
        const scomm_topo_rank_t *r = &ranks[i];

        scomm_rank_device(r, dev, sizeof(dev));
        scomm_jw_open(w, NULL, '{');
        scomm_jw_int(w, "rank", r->rank);
        scomm_jw_int(w, "host", r->host_id);
        scomm_jw_int(w, "local_rank", r->local_rank);
        scomm_jw_int(w, "local_size", r->local_size);
        scomm_jw_int(w, "numa", r->numa);
        scomm_jw_str(w, "device", dev);
        scomm_jw_str(w, "accel_pci", r->accel_pci);
        scomm_jw_str(w, "nic", (r->nic >= 0) ? r->nic_name : NULL);
        scomm_jw_str(w, "nic_kind",
                     (r->nic >= 0) ? scomm_topo_link_name(
                                         (scomm_link_kind_t)r->nic_kind)
                                   : NULL);
        scomm_jw_real(w, "nic_gbps", (double)r->nic_gbps);
        scomm_jw_int(w, "nic_distance", r->nic_distance);
        scomm_jw_close(w, '}');
    }
    scomm_jw_close(w, ']');
    scomm_jw_open(w, "matrix", '{');
    scomm_matrix_json(w, "kind", m, n, 0);
    scomm_matrix_json(w, "bandwidth_gbps", m, n, 1);
    scomm_matrix_json(w, "latency_us", m, n, 2);
    scomm_matrix_json(w, "hops", m, n, 3);
    scomm_jw_close(w, '}');
    scomm_jw_open(w, "links", '[');
    for (i = 0; i < n; i++) {
        for (j = i + 1; j < n; j++) {
            const scomm_topo_link_t *l = &m[(size_t)i * n + j];
            const scomm_link_info_t *info =
                scomm_topo_link_info((scomm_link_kind_t)l->kind);

            scomm_rank_device(&ranks[i], dev, sizeof(dev));
            scomm_rank_device(&ranks[j], dev2, sizeof(dev2));
            scomm_jw_open(w, NULL, '{');
            scomm_jw_int(w, "src_rank", i);
            scomm_jw_int(w, "dst_rank", j);
            scomm_jw_str(w, "src", dev);
            scomm_jw_str(w, "dst", dev2);
            scomm_jw_str(w, "kind", info->name);
            scomm_jw_str(w, "seed_kind", info->seed_kind);
            scomm_jw_real(w, "bandwidth_gbps", (double)l->gbps);
            scomm_jw_real(w, "latency_us", (double)l->lat_us);
            scomm_jw_int(w, "hops", l->hops);
            scomm_jw_bool(w, "bidirectional", 1);
            scomm_jw_close(w, '}');
        }
    }
    scomm_jw_close(w, ']');
    scomm_jw_close(w, '}');
}

char *scomm_topo_json_text(const scomm_topo_host_t *host,
                           const scomm_topo_rank_t *ranks, int n,
                           const scomm_topo_link_t *m, int nhosts,
                           const scomm_topo_reco_t *reco, int indent)
{
    scomm_jw_t w;
    int i;

    memset(&w, 0, sizeof(w));
    w.indent = SCOMM_MAX(indent, 0);
    scomm_jw_open(&w, NULL, '{');
    scomm_jw_str(&w, "schema", SCOMM_TOPO_SCHEMA);
    scomm_host_json(&w, host);
    if ((ranks != NULL) && (m != NULL)) {
        scomm_world_json(&w, ranks, n, m, nhosts);
    }
    if (reco != NULL) {
        scomm_jw_open(&w, "recommendation", '{');
        scomm_jw_str(&w, "preset", reco->preset);
        scomm_jw_open(&w, "reasons", '[');
        for (i = 0; i < reco->nreasons; i++) {
            scomm_jw_str(&w, NULL, reco->reasons[i]);
        }
        scomm_jw_close(&w, ']');
        scomm_jw_close(&w, '}');
    }
    scomm_jw_close(&w, '}');
    if (w.failed) {
        free(w.p);
        return NULL;
    }
    return w.p;
}

/* ---- reading ---- */

#ifdef SCOMM_HAVE_JANSSON

typedef struct scomm_jctx {
    const char *name;
    char       *err;
    size_t      errlen;
} scomm_jctx_t;

static int scomm_jbad(scomm_jctx_t *c, const char *field, const char *why)
{
    snprintf(c->err, c->errlen, "%s: field '%s' %s", c->name, field, why);
    return SCOMM_ERR_BAD_CONFIG;
}

static int scomm_jstr(scomm_jctx_t *c, json_t *o, const char *key,
                      char *out, size_t len)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL) {
        out[0] = '\0';
        return SCOMM_OK;
    }
    if (!json_is_string(v)) {
        return scomm_jbad(c, key, "is not a string");
    }
    if (json_string_length(v) >= len) {
        return scomm_jbad(c, key, "is too long");
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        return scomm_jbad(c, key, "holds a NUL byte");
    }
    snprintf(out, len, "%s", json_string_value(v));
    return SCOMM_OK;
}

static int scomm_jint(scomm_jctx_t *c, json_t *o, const char *key,
                      long long lo, long long hi, long long *out)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL) {
        return SCOMM_OK; /* keeps the default */
    }
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return SCOMM_OK;
    }
    if (!json_is_integer(v) || (json_integer_value(v) < lo) ||
        (json_integer_value(v) > hi)) {
        return scomm_jbad(c, key, "is not an integer in range");
    }
    *out = json_integer_value(v);
    return SCOMM_OK;
}

static int scomm_jreal(scomm_jctx_t *c, json_t *o, const char *key,
                       double *out)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL) {
        return SCOMM_OK;
    }
    if (!json_is_number(v) || (json_number_value(v) < 0.0) ||
        (json_number_value(v) > 1e9)) {
        return scomm_jbad(c, key, "is not a number in 0..1e9");
    }
    *out = json_number_value(v);
    return SCOMM_OK;
}

#define SCOMM_J(_call)                                                     \
    do {                                                                   \
        int st_ = (_call);                                                 \
        if (st_ != SCOMM_OK) {                                             \
            return st_;                                                    \
        }                                                                  \
    } while (0)

static int scomm_jint_field(scomm_jctx_t *c, json_t *o, const char *key,
                            long long lo, long long hi, int *out)
{
    long long v = *out;

    SCOMM_J(scomm_jint(c, o, key, lo, hi, &v));
    *out = (int)v;
    return SCOMM_OK;
}

static int scomm_jlink(scomm_jctx_t *c, json_t *o, const char *key,
                       int *out)
{
    char buf[32];
    int k;

    SCOMM_J(scomm_jstr(c, o, key, buf, sizeof(buf)));
    if (buf[0] == '\0') {
        return SCOMM_OK;
    }
    k = scomm_topo_link_parse(buf);
    if (k < 0) {
        return scomm_jbad(c, key, "names no link kind");
    }
    *out = k;
    return SCOMM_OK;
}

static int scomm_jhex16(scomm_jctx_t *c, json_t *o, const char *key,
                        uint16_t *out)
{
    char buf[16], *end;
    unsigned long v;

    SCOMM_J(scomm_jstr(c, o, key, buf, sizeof(buf)));
    if (buf[0] == '\0') {
        return SCOMM_OK;
    }
    v = strtoul(buf, &end, 16);
    if ((*end != '\0') || (v > 0xffff)) {
        return scomm_jbad(c, key, "is not a 16-bit hex id");
    }
    *out = (uint16_t)v;
    return SCOMM_OK;
}

static int scomm_jcache(scomm_jctx_t *c, json_t *caches, const char *key,
                        scomm_topo_cache_t *out)
{
    json_t *v = json_object_get(caches, key);
    long long size = 0;

    if (v == NULL) {
        return SCOMM_OK;
    }
    if (!json_is_object(v)) {
        return scomm_jbad(c, key, "is not an object");
    }
    SCOMM_J(scomm_jint(c, v, "size", 0, 1ll << 40, &size));
    out->size = (uint64_t)size;
    return scomm_jint_field(c, v, "count", 0, 1 << 24, &out->count);
}

static int scomm_jarray(scomm_jctx_t *c, json_t *o, const char *key,
                        size_t max, json_t **out)
{
    *out = json_object_get(o, key);
    if (*out == NULL) {
        return SCOMM_OK;
    }
    if (!json_is_array(*out)) {
        return scomm_jbad(c, key, "is not an array");
    }
    if (json_array_size(*out) > max) {
        return scomm_jbad(c, key, "has too many entries");
    }
    return SCOMM_OK;
}

static int scomm_jhost(scomm_jctx_t *c, json_t *h, scomm_topo_host_t *host)
{
    json_t *cpu, *caches, *arr, *x;
    long long mem = 0;
    size_t i;

    if (!json_is_object(h)) {
        return scomm_jbad(c, "host", "is not an object");
    }
    SCOMM_J(scomm_jstr(c, h, "hostname", host->hostname,
                       sizeof(host->hostname)));
    SCOMM_J(scomm_jstr(c, h, "boot_id", host->boot_id,
                       sizeof(host->boot_id)));
    cpu = json_object_get(h, "cpu");
    if (cpu != NULL) {
        if (!json_is_object(cpu)) {
            return scomm_jbad(c, "cpu", "is not an object");
        }
        SCOMM_J(scomm_jint_field(c, cpu, "packages", 0, 1 << 16,
                                 &host->packages));
        SCOMM_J(scomm_jint_field(c, cpu, "numa_nodes", 0, 1 << 16,
                                 &host->numa_nodes));
        SCOMM_J(scomm_jint_field(c, cpu, "cores", 0, 1 << 24,
                                 &host->cores));
        SCOMM_J(scomm_jint_field(c, cpu, "pus", 0, 1 << 24, &host->pus));
        SCOMM_J(scomm_jint(c, cpu, "memory_bytes", 0, 1ll << 56, &mem));
        host->memory = (uint64_t)mem;
        caches       = json_object_get(cpu, "caches");
        if (caches != NULL) {
            if (!json_is_object(caches)) {
                return scomm_jbad(c, "caches", "is not an object");
            }
            SCOMM_J(scomm_jcache(c, caches, "l1d", &host->l1d));
            SCOMM_J(scomm_jcache(c, caches, "l1i", &host->l1i));
            SCOMM_J(scomm_jcache(c, caches, "l2", &host->l2));
            SCOMM_J(scomm_jcache(c, caches, "l3", &host->l3));
        }
    }
    SCOMM_J(scomm_jint_field(c, h, "pci_devices", 0, 1 << 20,
                             &host->pci_devices));
    SCOMM_J(scomm_jint_field(c, h, "nvswitches", 0, 1024,
                             &host->nvswitches));
    SCOMM_J(scomm_jint_field(c, h, "ub_devices", 0, 1 << 20,
                             &host->ub_devices));
    SCOMM_J(scomm_jint_field(c, h, "nvml", 0, 1, &host->nvml));
    SCOMM_J(scomm_jarray(c, h, "accelerators", SCOMM_TOPO_MAX_ACCEL, &arr));
    json_array_foreach(arr, i, x) {
        scomm_topo_accel_t *a = &host->accel[host->naccel];

        if (!json_is_object(x)) {
            return scomm_jbad(c, "accelerators", "holds a non-object");
        }
        a->numa   = -1;
        a->fabric = SCOMM_LINK_PCIE;
        SCOMM_J(scomm_jstr(c, x, "vendor", a->vendor, sizeof(a->vendor)));
        SCOMM_J(scomm_jstr(c, x, "type", a->type, sizeof(a->type)));
        SCOMM_J(scomm_jstr(c, x, "model", a->model, sizeof(a->model)));
        SCOMM_J(scomm_jhex16(c, x, "vendor_id", &a->vendor_id));
        SCOMM_J(scomm_jhex16(c, x, "device_id", &a->device_id));
        SCOMM_J(scomm_jstr(c, x, "pci", a->pci, sizeof(a->pci)));
        SCOMM_J(scomm_jstr(c, x, "pci_path", a->pci_path,
                           sizeof(a->pci_path)));
        SCOMM_J(scomm_jint_field(c, x, "numa", -1, 1 << 16, &a->numa));
        SCOMM_J(scomm_jlink(c, x, "fabric", &a->fabric));
        SCOMM_J(scomm_jint_field(c, x, "fabric_links", 0, 1024,
                                 &a->fabric_links));
        SCOMM_J(scomm_jreal(c, x, "fabric_gbps", &a->fabric_gbps));
        SCOMM_J(scomm_jreal(c, x, "pcie_gbps", &a->pcie_gbps));
        if (a->type[0] == '\0') {
            snprintf(a->type, sizeof(a->type), "gpu");
        }
        host->naccel++;
    }
    SCOMM_J(scomm_jarray(c, h, "nics", SCOMM_TOPO_MAX_NIC, &arr));
    json_array_foreach(arr, i, x) {
        scomm_topo_nic_t *n = &host->nic[host->nnic];

        if (!json_is_object(x)) {
            return scomm_jbad(c, "nics", "holds a non-object");
        }
        n->numa = -1;
        n->kind = SCOMM_LINK_TCP;
        n->up   = 1;
        SCOMM_J(scomm_jstr(c, x, "name", n->name, sizeof(n->name)));
        SCOMM_J(scomm_jstr(c, x, "netdev", n->netdev, sizeof(n->netdev)));
        SCOMM_J(scomm_jlink(c, x, "kind", &n->kind));
        if ((n->kind != SCOMM_LINK_TCP) && (n->kind != SCOMM_LINK_ROCE) &&
            (n->kind != SCOMM_LINK_INFINIBAND)) {
            return scomm_jbad(c, "kind", "of a NIC must be tcp, roce or "
                              "infiniband");
        }
        SCOMM_J(scomm_jstr(c, x, "pci", n->pci, sizeof(n->pci)));
        SCOMM_J(scomm_jstr(c, x, "pci_path", n->pci_path,
                           sizeof(n->pci_path)));
        SCOMM_J(scomm_jint_field(c, x, "numa", -1, 1 << 16, &n->numa));
        SCOMM_J(scomm_jreal(c, x, "gbps", &n->gbps));
        SCOMM_J(scomm_jint_field(c, x, "up", 0, 1, &n->up));
        host->nnic++;
    }
    SCOMM_J(scomm_jarray(c, h, "cxl", SCOMM_TOPO_MAX_CXL, &arr));
    json_array_foreach(arr, i, x) {
        scomm_topo_cxl_t *d = &host->cxl[host->ncxl];
        long long v = 0;

        if (!json_is_object(x)) {
            return scomm_jbad(c, "cxl", "holds a non-object");
        }
        d->numa = -1;
        SCOMM_J(scomm_jstr(c, x, "name", d->name, sizeof(d->name)));
        SCOMM_J(scomm_jstr(c, x, "pci", d->pci, sizeof(d->pci)));
        SCOMM_J(scomm_jint(c, x, "ram_bytes", 0, 1ll << 56, &v));
        d->ram_bytes = (uint64_t)v;
        v            = 0;
        SCOMM_J(scomm_jint(c, x, "pmem_bytes", 0, 1ll << 56, &v));
        d->pmem_bytes = (uint64_t)v;
        SCOMM_J(scomm_jint_field(c, x, "numa", -1, 1 << 16, &d->numa));
        host->ncxl++;
    }
    return SCOMM_OK;
}

int scomm_topo_host_from_json(const char *text, size_t len,
                              const char *name, scomm_topo_host_t *host,
                              char *err, size_t errlen)
{
    json_error_t jerr;
    scomm_jctx_t c;
    json_t *root, *h;
    int status;

    memset(host, 0, sizeof(*host));
    c.name   = (name != NULL) ? name : "<json>";
    c.err    = err;
    c.errlen = errlen;
    root     = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "%s:%d:%d: malformed JSON: %s", c.name,
                 jerr.line, jerr.column, jerr.text);
        return SCOMM_ERR_BAD_CONFIG;
    }
    h = json_object_get(root, "host");
    if (h == NULL) {
        h = root; /* the host object alone */
    }
    status = scomm_jhost(&c, h, host);
    json_decref(root);
    if ((status == SCOMM_OK) && (host->hostname[0] == '\0')) {
        status = scomm_jbad(&c, "hostname", "is missing");
    }
    return status;
}
#else /* !SCOMM_HAVE_JANSSON */
int scomm_topo_host_from_json(const char *text, size_t len,
                              const char *name, scomm_topo_host_t *host,
                              char *err, size_t errlen)
{
    (void)text;
    (void)len;
    memset(host, 0, sizeof(*host));
    return scomm_feature_missing(SCOMM_FEATURE_JANSSON, err, errlen,
                                 "%s: reading a saved topology (JSON)",
                                 (name != NULL) ? name : "<json>");
}
#endif /* SCOMM_HAVE_JANSSON */
