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
 */
#include "topo.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/scomm_int.h"

#define SCOMM_TOPO_SCHEMA "scomm.topology/1"

static json_t *scomm_cache_json(const scomm_topo_cache_t *c)
{
    return json_pack("{s:I,s:i}", "size", (json_int_t)c->size, "count",
                     c->count);
}

static json_t *scomm_host_json(const scomm_topo_host_t *h)
{
    json_t *o, *a, *x;
    char id[64], hex[8];
    int i;

    o = json_object();
    json_object_set_new(o, "hostname", json_string(h->hostname));
    json_object_set_new(o, "boot_id", json_string(h->boot_id));
    json_object_set_new(o, "source", json_string(h->source));
    json_object_set_new(o, "sysfs_root", json_string(h->sysfs_root));
    json_object_set_new(
        o, "cpu",
        json_pack("{s:i,s:i,s:i,s:i,s:I,s:{s:o,s:o,s:o,s:o}}", "packages",
                  h->packages, "numa_nodes", h->numa_nodes, "cores",
                  h->cores, "pus", h->pus, "memory_bytes",
                  (json_int_t)h->memory, "caches", "l1d",
                  scomm_cache_json(&h->l1d), "l1i", scomm_cache_json(&h->l1i),
                  "l2", scomm_cache_json(&h->l2), "l3",
                  scomm_cache_json(&h->l3)));
    json_object_set_new(o, "pci_devices", json_integer(h->pci_devices));
    a = json_array();
    for (i = 0; i < h->naccel; i++) {
        const scomm_topo_accel_t *d = &h->accel[i];

        snprintf(id, sizeof(id), "node0:%s:%d", d->type, i);
        x = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:i,s:f,"
                      "s:f}",
                      "id", id, "vendor", d->vendor, "type", d->type,
                      "model", d->model, "vendor_id", "", "device_id", "",
                      "pci", d->pci, "pci_path", d->pci_path, "numa",
                      d->numa, "fabric",
                      scomm_topo_link_name((scomm_link_kind_t)d->fabric),
                      "fabric_links", d->fabric_links, "fabric_gbps",
                      d->fabric_gbps, "pcie_gbps", d->pcie_gbps);
        snprintf(hex, sizeof(hex), "0x%04x", d->vendor_id);
        json_object_set_new(x, "vendor_id", json_string(hex));
        snprintf(hex, sizeof(hex), "0x%04x", d->device_id);
        json_object_set_new(x, "device_id", json_string(hex));
        json_array_append_new(a, x);
    }
    json_object_set_new(o, "accelerators", a);
    a = json_array();
    for (i = 0; i < h->nnic; i++) {
        const scomm_topo_nic_t *n = &h->nic[i];

        json_array_append_new(
            a, json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:f,s:b}", "name",
                         n->name, "netdev", n->netdev, "kind",
                         scomm_topo_link_name((scomm_link_kind_t)n->kind),
                         "pci", n->pci, "pci_path", n->pci_path, "numa",
                         n->numa, "gbps", n->gbps, "up", n->up));
    }
    json_object_set_new(o, "nics", a);
    a = json_array();
    for (i = 0; i < h->ncxl; i++) {
        const scomm_topo_cxl_t *c = &h->cxl[i];

        json_array_append_new(
            a, json_pack("{s:s,s:s,s:I,s:I,s:i}", "name", c->name, "pci",
                         c->pci, "ram_bytes", (json_int_t)c->ram_bytes,
                         "pmem_bytes", (json_int_t)c->pmem_bytes, "numa",
                         c->numa));
    }
    json_object_set_new(o, "cxl", a);
    json_object_set_new(o, "nvswitches", json_integer(h->nvswitches));
    json_object_set_new(o, "ub_devices", json_integer(h->ub_devices));
    json_object_set_new(o, "nvml", json_boolean(h->nvml));
    return o;
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

static json_t *scomm_world_json(const scomm_topo_rank_t *ranks, int n,
                                const scomm_topo_link_t *m, int nhosts)
{
    json_t *o, *a, *hosts, *mk, *mb, *ml, *mh, *rk, *rb, *rl, *rh, *links;
    char dev[96], dev2[96];
    int i, j, h;

    o = json_object();
    json_object_set_new(o, "size", json_integer(n));
    hosts = json_array();
    for (h = 0; h < nhosts; h++) {
        json_t *hr = json_array(), *ho = NULL;

        for (i = 0; i < n; i++) {
            if (ranks[i].host_id != h) {
                continue;
            }
            if (ho == NULL) {
                ho = json_pack("{s:i,s:s,s:s}", "id", h, "hostname",
                               ranks[i].hostname, "boot_id",
                               ranks[i].boot_id);
            }
            json_array_append_new(hr, json_integer(ranks[i].rank));
        }
        if (ho == NULL) {
            json_decref(hr);
            continue;
        }
        json_object_set_new(ho, "local_ranks", json_integer(
                                (json_int_t)json_array_size(hr)));
        json_object_set_new(ho, "ranks", hr);
        json_array_append_new(hosts, ho);
    }
    json_object_set_new(o, "hosts", hosts);
    a = json_array();
    for (i = 0; i < n; i++) {
        const scomm_topo_rank_t *r = &ranks[i];

        scomm_rank_device(r, dev, sizeof(dev));
        json_array_append_new(
            a, json_pack("{s:i,s:i,s:i,s:i,s:i,s:s,s:s,s:s?,s:s?,s:f,s:i}",
                         "rank", r->rank, "host", r->host_id, "local_rank",
                         r->local_rank, "local_size", r->local_size, "numa",
                         r->numa, "device", dev, "accel_pci", r->accel_pci,
                         "nic", (r->nic >= 0) ? r->nic_name : NULL,
                         "nic_kind",
                         (r->nic >= 0) ? scomm_topo_link_name(
                                             (scomm_link_kind_t)r->nic_kind)
                                       : NULL,
                         "nic_gbps", (double)r->nic_gbps, "nic_distance",
                         r->nic_distance));
    }
    json_object_set_new(o, "ranks", a);
    mk    = json_array();
    mb    = json_array();
    ml    = json_array();
    mh    = json_array();
    links = json_array();
    for (i = 0; i < n; i++) {
        rk = json_array();
        rb = json_array();
        rl = json_array();
        rh = json_array();
        for (j = 0; j < n; j++) {
            const scomm_topo_link_t *l = &m[(size_t)i * n + j];
            const scomm_link_info_t *info =
                scomm_topo_link_info((scomm_link_kind_t)l->kind);

            json_array_append_new(rk, json_string(info->name));
            json_array_append_new(rb, json_real((double)l->gbps));
            json_array_append_new(rl, json_real((double)l->lat_us));
            json_array_append_new(rh, json_integer(l->hops));
            if (j > i) {
                scomm_rank_device(&ranks[i], dev, sizeof(dev));
                scomm_rank_device(&ranks[j], dev2, sizeof(dev2));
                json_array_append_new(
                    links,
                    json_pack("{s:i,s:i,s:s,s:s,s:s,s:s,s:f,s:f,s:i,s:b}",
                              "src_rank", i, "dst_rank", j, "src", dev,
                              "dst", dev2, "kind", info->name, "seed_kind",
                              info->seed_kind, "bandwidth_gbps",
                              (double)l->gbps, "latency_us",
                              (double)l->lat_us, "hops", l->hops,
                              "bidirectional", 1));
            }
        }
        json_array_append_new(mk, rk);
        json_array_append_new(mb, rb);
        json_array_append_new(ml, rl);
        json_array_append_new(mh, rh);
    }
    json_object_set_new(o, "matrix",
                        json_pack("{s:o,s:o,s:o,s:o}", "kind", mk,
                                  "bandwidth_gbps", mb, "latency_us", ml,
                                  "hops", mh));
    json_object_set_new(o, "links", links);
    return o;
}

char *scomm_topo_json_text(const scomm_topo_host_t *host,
                           const scomm_topo_rank_t *ranks, int n,
                           const scomm_topo_link_t *m, int nhosts,
                           const scomm_topo_reco_t *reco, int indent)
{
    json_t *root, *rs;
    char *text;
    int i;

    root = json_object();
    if (root == NULL) {
        return NULL;
    }
    json_object_set_new(root, "schema", json_string(SCOMM_TOPO_SCHEMA));
    json_object_set_new(root, "host", scomm_host_json(host));
    if ((ranks != NULL) && (m != NULL)) {
        json_object_set_new(root, "world",
                            scomm_world_json(ranks, n, m, nhosts));
    }
    if (reco != NULL) {
        rs = json_array();
        for (i = 0; i < reco->nreasons; i++) {
            json_array_append_new(rs, json_string(reco->reasons[i]));
        }
        json_object_set_new(root, "recommendation",
                            json_pack("{s:s,s:o}", "preset", reco->preset,
                                      "reasons", rs));
    }
    text = json_dumps(root, JSON_INDENT(indent) | JSON_PRESERVE_ORDER |
                                JSON_REAL_PRECISION(6));
    json_decref(root);
    return text;
}

/* ---- reading ---- */

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
