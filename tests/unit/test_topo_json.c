/*
 * test_topo_json.c - the topology JSON writer (scomm_topo_json_text in
 * src/topo/topo_json.c, which needs no library) against jansson: for
 * random hosts and worlds, with strings full of quotes, backslashes,
 * control bytes, multi-byte UTF-8 and bytes that are not UTF-8, and reals
 * from 1e-9 to 1e12, NaN and infinity,
 *  - jansson parses the text (it is valid JSON);
 *  - jansson's own json_dumps of what it parsed, with the flags the writer
 *    imitates (JSON_INDENT(n), JSON_PRESERVE_ORDER, JSON_REAL_PRECISION(6)),
 *    is the same text byte for byte, for indents 0, 2 and 4;
 *  - a string that is valid UTF-8 comes back unchanged; one that is not
 *    comes back the same length, its bad bytes as '?'; a real comes back
 *    a real (never an integer) within the 6 digits, and one that is not
 *    finite as null.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scomm.h"
#include "st_test.h"
#include "topo/topo.h"

#define ROUNDS 300
#define NR     5

static uint64_t seed = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t n)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return (uint32_t)(seed >> 32) % n;
}

/* Up to len - 1 bytes, none 0, from a mix that stresses the escaper. */
static void rnd_str(char *s, size_t len)
{
    static const char *const bits[] = {
        "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\b", "\f", "\r",
        "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe2\x82", "\x80", "node0:x"
    };
    size_t n = rnd(3) ? rnd((uint32_t)len) : 0, off = 0, k;
    const char *b;

    while (off < n) {
        b = bits[rnd(sizeof(bits) / sizeof(bits[0]))];
        k = strlen(b);
        if (off + k >= len) {
            break;
        }
        memcpy(s + off, b, k);
        off += k;
    }
    s[off] = '\0';
}

static double rnd_real(void)
{
    switch (rnd(8)) {
    case 0: return 0.0;
    case 1: return (double)rnd(1000);
    case 2: return (double)rnd(1000000) / 7.0;
    case 3: return 1e-9 * (double)(rnd(1000) + 1);
    case 4: return 1e12 / (double)(rnd(1000) + 1);
    case 5: return rnd(2) ? NAN : INFINITY;
    case 6: return (float)rnd(100000) / 3.0f;
    default: return 25.0 * (double)rnd(20);
    }
}

static void rnd_host(scomm_topo_host_t *h)
{
    int i;

    memset(h, 0, sizeof(*h));
    rnd_str(h->hostname, sizeof(h->hostname));
    rnd_str(h->boot_id, sizeof(h->boot_id));
    rnd_str(h->source, sizeof(h->source));
    rnd_str(h->sysfs_root, sizeof(h->sysfs_root));
    h->packages    = (int)rnd(4);
    h->cores       = (int)rnd(512);
    h->memory      = (uint64_t)rnd(1u << 30) << rnd(20);
    h->l3.size     = (uint64_t)rnd(1u << 26);
    h->l3.count    = (int)rnd(8);
    h->pci_devices = (int)rnd(300) - 1;
    h->naccel      = (int)rnd(5);
    for (i = 0; i < h->naccel; i++) {
        rnd_str(h->accel[i].vendor, sizeof(h->accel[i].vendor));
        rnd_str(h->accel[i].type, sizeof(h->accel[i].type));
        rnd_str(h->accel[i].model, sizeof(h->accel[i].model));
        rnd_str(h->accel[i].pci_path, sizeof(h->accel[i].pci_path));
        h->accel[i].vendor_id   = (uint16_t)rnd(65536);
        h->accel[i].numa        = (int)rnd(3) - 1;
        h->accel[i].fabric      = (int)rnd(SCOMM_LINK_COUNT);
        h->accel[i].fabric_gbps = rnd_real();
        h->accel[i].pcie_gbps   = rnd_real();
    }
    h->nnic = (int)rnd(4);
    for (i = 0; i < h->nnic; i++) {
        rnd_str(h->nic[i].name, sizeof(h->nic[i].name));
        h->nic[i].kind = (int)rnd(SCOMM_LINK_COUNT);
        h->nic[i].gbps = rnd_real();
        h->nic[i].up   = (int)rnd(2);
    }
    h->ncxl = (int)rnd(3);
    for (i = 0; i < h->ncxl; i++) {
        rnd_str(h->cxl[i].name, sizeof(h->cxl[i].name));
        h->cxl[i].pmem_bytes = (uint64_t)rnd(1000) << 30;
    }
    h->nvml = (int)rnd(2);
}

static void rnd_world(scomm_topo_rank_t *r, scomm_topo_link_t *m, int n,
                      scomm_topo_reco_t *reco)
{
    int i;

    memset(r, 0, (size_t)n * sizeof(*r));
    for (i = 0; i < n; i++) {
        rnd_str(r[i].hostname, sizeof(r[i].hostname));
        r[i].rank       = i;
        r[i].host_id    = (int)rnd(3);
        r[i].accel      = (int)rnd(3) - 1;
        r[i].nic        = (int)rnd(3) - 1;
        r[i].nic_kind   = (int)rnd(SCOMM_LINK_COUNT);
        r[i].nic_gbps   = (float)rnd_real();
        rnd_str(r[i].accel_id, sizeof(r[i].accel_id));
        rnd_str(r[i].nic_name, sizeof(r[i].nic_name));
    }
    for (i = 0; i < n * n; i++) {
        m[i].kind   = (int)rnd(SCOMM_LINK_COUNT);
        m[i].gbps   = (float)rnd_real();
        m[i].lat_us = (float)rnd_real();
        m[i].hops   = (int)rnd(4);
    }
    memset(reco, 0, sizeof(*reco));
    rnd_str(reco->preset, sizeof(reco->preset));
    reco->nreasons = (int)rnd(SCOMM_TOPO_REASON_MAX + 1);
    for (i = 0; i < reco->nreasons; i++) {
        rnd_str(reco->reasons[i], sizeof(reco->reasons[i]));
    }
}

/* What the writer must make of s: itself if UTF-8, else bad bytes '?'
 * (jansson judges validity, not the code under test). */
static void check_string(json_t *v, const char *s)
{
    json_t *ref = json_string(s);
    const char *got;
    size_t i;

    ST_ASSERT(json_is_string(v));
    got = json_string_value(v);
    if (ref != NULL) {
        ST_ASSERT(strcmp(got, s) == 0);
        json_decref(ref);
        return;
    }
    ST_ASSERT_EQ(strlen(got), strlen(s));
    for (i = 0; s[i] != '\0'; i++) {
        ST_ASSERT((got[i] == s[i]) || (got[i] == '?'));
    }
    ref = json_string(got); /* valid now */
    ST_ASSERT(ref != NULL);
    json_decref(ref);
}

static void check_real(json_t *v, double x)
{
    if (!isfinite(x)) {
        ST_ASSERT(json_is_null(v));
    } else {
        ST_ASSERT(json_is_real(v)); /* "300.0", not "300" */
        ST_ASSERT(fabs(json_real_value(v) - x) <= fabs(x) * 1e-5);
    }
}

static void check(const scomm_topo_host_t *h, const scomm_topo_rank_t *r,
                  const scomm_topo_link_t *m, const scomm_topo_reco_t *reco,
                  int indent)
{
    json_error_t jerr;
    json_t *root, *host, *a;
    char *text, *again;
    int i;

    text = scomm_topo_json_text(h, r, NR, m, 3, reco, indent);
    ST_ASSERT(text != NULL);
    root = json_loads(text, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "jansson refuses the text at %d:%d: %s\n%s\n",
                jerr.line, jerr.column, jerr.text, text);
        ST_ASSERT(0);
    }
    again = json_dumps(root, JSON_INDENT(indent) | JSON_PRESERVE_ORDER |
                                 JSON_REAL_PRECISION(6));
    ST_ASSERT(again != NULL);
    if (strcmp(again, text) != 0) {
        for (i = 0; (text[i] != '\0') && (text[i] == again[i]); i++) {
        }
        fprintf(stderr, "indent %d: differs from jansson at byte %d:\n"
                "ours:    %.80s\njansson: %.80s\n", indent, i, text + i,
                again + i);
        ST_ASSERT(0);
    }
    host = json_object_get(root, "host");
    check_string(json_object_get(host, "hostname"), h->hostname);
    check_string(json_object_get(host, "sysfs_root"), h->sysfs_root);
    ST_ASSERT_EQ(json_integer_value(json_object_get(
                     json_object_get(host, "cpu"), "memory_bytes")),
                 (json_int_t)h->memory);
    a = json_object_get(host, "accelerators");
    ST_ASSERT_EQ(json_array_size(a), (size_t)h->naccel);
    for (i = 0; i < h->naccel; i++) {
        check_string(json_object_get(json_array_get(a, (size_t)i), "model"),
                     h->accel[i].model);
        check_real(json_object_get(json_array_get(a, (size_t)i),
                                   "fabric_gbps"), h->accel[i].fabric_gbps);
    }
    a = json_object_get(json_object_get(root, "world"), "ranks");
    ST_ASSERT_EQ(json_array_size(a), NR);
    for (i = 0; i < NR; i++) {
        json_t *nic = json_object_get(json_array_get(a, (size_t)i), "nic");

        if (r[i].nic < 0) {
            ST_ASSERT(json_is_null(nic));
        } else {
            check_string(nic, r[i].nic_name);
        }
    }
    a = json_object_get(json_object_get(root, "recommendation"), "reasons");
    ST_ASSERT_EQ(json_array_size(a), (size_t)reco->nreasons);
    free(again);
    free(text);
    json_decref(root);
}

int main(void)
{
    static scomm_topo_host_t h;
    static scomm_topo_rank_t r[NR];
    static scomm_topo_link_t m[NR * NR];
    scomm_topo_reco_t reco;
    int round;

    for (round = 0; round < ROUNDS; round++) {
        rnd_host(&h);
        rnd_world(r, m, NR, &reco);
        check(&h, r, m, &reco, 0);
        check(&h, r, m, &reco, 2);
        check(&h, r, m, &reco, 4);
    }
    printf("test_topo_json: %d rounds, 3 indents: ok\n", ROUNDS);
    return 0;
}
