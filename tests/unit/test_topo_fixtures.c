/*
 * test_topo_fixtures.c - discovery, rank summaries, the link matrix, the
 * nearest-NIC choice, the recommendation and the transport profiles, from
 * the fixture trees of tests/topo/fixtures (make_fixtures.py). The
 * expected values are written down from the hardware each fixture
 * describes, not copied from scomm's output.
 *
 * Usage: test_topo_fixtures FIXTURES_DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scomm.h"
#include "st_test.h"
#include "topo/topo.h"

static const char *fixdir;

static scomm_topo_host_t *load(const char *name)
{
    scomm_topo_host_t *h = malloc(sizeof(*h));
    char xml[512], root[512], err[512] = "";
    int st;

    ST_ASSERT(h != NULL);
    snprintf(xml, sizeof(xml), "%s/%s/topo.xml", fixdir, name);
    snprintf(root, sizeof(root), "%s/%s/root", fixdir, name);
    st = scomm_topo_discover(h, xml, root, err, sizeof(err));
    if (st != SCOMM_OK) {
        fprintf(stderr, "%s: %s\n", name, err);
    }
    ST_ASSERT_OK(st);
    return h;
}

/* n local ranks on host h, then n more on a copy named other (when
 * other != NULL); returns the number of hosts. */
static int world(const scomm_topo_host_t *h, int n, const char *other,
                 scomm_topo_rank_t *r, scomm_topo_link_t *m)
{
    int i, total = (other != NULL) ? 2 * n : n;

    for (i = 0; i < n; i++) {
        scomm_topo_rank_fill(h, i, i, n, -1, &r[i]);
    }
    if (other != NULL) {
        scomm_topo_host_t *h2 = malloc(sizeof(*h2));

        ST_ASSERT(h2 != NULL);
        *h2 = *h;
        snprintf(h2->hostname, sizeof(h2->hostname), "%s", other);
        for (i = 0; i < n; i++) {
            scomm_topo_rank_fill(h2, n + i, i, n, -1, &r[n + i]);
        }
        free(h2);
    }
    return scomm_topo_matrix(r, total, m);
}

static int nic_index(const scomm_topo_host_t *h, const char *name)
{
    int i;

    for (i = 0; i < h->nnic; i++) {
        if (strcmp(h->nic[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

#define AT(_m, _n, _i, _j) (&(_m)[(size_t)(_i) * (_n) + (_j)])

static void test_dgx(void)
{
    scomm_topo_host_t *h = load("dgx");
    scomm_topo_rank_t r[16];
    scomm_topo_link_t m[256];
    scomm_topo_reco_t reco;
    char want[16];
    int i, j, nh;

    ST_ASSERT(strcmp(h->hostname, "dgx-a100") == 0);
    ST_ASSERT_EQ(h->packages, 2);
    ST_ASSERT_EQ(h->numa_nodes, 2);
    ST_ASSERT_EQ(h->cores, 16);
    ST_ASSERT_EQ(h->pus, 32);
    ST_ASSERT_EQ(h->l3.count, 2);
    ST_ASSERT_EQ(h->l3.size, (uint64_t)32 << 20);
    ST_ASSERT_EQ(h->naccel, 8);
    ST_ASSERT_EQ(h->nvswitches, 6);
    for (i = 0; i < 8; i++) {
        ST_ASSERT(strcmp(h->accel[i].type, "cuda") == 0);
        ST_ASSERT_EQ(h->accel[i].fabric, SCOMM_LINK_NVLINK);
        ST_ASSERT_EQ(h->accel[i].numa, (i < 4) ? 0 : 1);
        /* Gen4 x16: 16 GT/s * 16 * 128/130 / 8 = 31.5 GB/s */
        ST_ASSERT((h->accel[i].pcie_gbps > 31.4) &&
                  (h->accel[i].pcie_gbps < 31.6));
    }
    ST_ASSERT_EQ(h->nnic, 5); /* 4 HCAs (with their IPoIB) + eno1; no lo */
    for (i = 0; i < 4; i++) {
        snprintf(want, sizeof(want), "mlx5_%d", i);
        j = nic_index(h, want);
        ST_ASSERT(j >= 0);
        ST_ASSERT_EQ(h->nic[j].kind, SCOMM_LINK_INFINIBAND);
        ST_ASSERT(h->nic[j].gbps == 25.0); /* 200 Gb/s HDR */
        ST_ASSERT(h->nic[j].up);
        snprintf(want, sizeof(want), "ib%d", i);
        ST_ASSERT(strcmp(h->nic[j].netdev, want) == 0);
    }
    j = nic_index(h, "eno1");
    ST_ASSERT((j >= 0) && (h->nic[j].kind == SCOMM_LINK_TCP));
    ST_ASSERT(h->nic[j].gbps == 0.125);

    nh = world(h, 8, NULL, r, m);
    ST_ASSERT_EQ(nh, 1);
    for (i = 0; i < 8; i++) {
        /* GPUs 2k, 2k+1 share a PCIe switch with mlx5_k */
        snprintf(want, sizeof(want), "mlx5_%d", i / 2);
        ST_ASSERT(strcmp(r[i].nic_name, want) == 0);
        ST_ASSERT_EQ(r[i].nic_distance, 1);
        ST_ASSERT_EQ(r[i].numa, (i < 4) ? 0 : 1);
        ST_ASSERT(strcmp(r[i].accel_id, (i == 3) ? "cuda:3" : r[i].accel_id)
                  == 0);
        for (j = 0; j < 8; j++) {
            const scomm_topo_link_t *l = AT(m, 8, i, j);

            ST_ASSERT_EQ(l->kind, (i == j) ? SCOMM_LINK_SELF
                                           : SCOMM_LINK_NVLINK);
            if (i != j) {
                ST_ASSERT(l->gbps == 300.0f);
                ST_ASSERT_EQ(l->hops, 1);
            }
        }
    }
    scomm_topo_recommend(h, r, 8, m, nh, &reco);
    ST_ASSERT(strcmp(reco.preset, "high-bw") == 0);
    scomm_topo_recommend(h, NULL, 0, NULL, 1, &reco);
    ST_ASSERT(strcmp(reco.preset, "high-bw") == 0);
    ST_ASSERT(reco.nreasons >= 2);

    nh = world(h, 8, "dgx-b", r, m);
    ST_ASSERT_EQ(nh, 2);
    ST_ASSERT_EQ(r[9].host_id, 1);
    ST_ASSERT_EQ(AT(m, 16, 0, 8)->kind, SCOMM_LINK_INFINIBAND);
    ST_ASSERT(AT(m, 16, 0, 8)->gbps == 25.0f);
    ST_ASSERT_EQ(AT(m, 16, 0, 8)->hops, 3);
    ST_ASSERT_EQ(AT(m, 16, 9, 10)->kind, SCOMM_LINK_NVLINK);
    scomm_topo_recommend(h, r, 16, m, nh, &reco);
    ST_ASSERT(strcmp(reco.preset, "high-bw") == 0);
    free(h);
}

static void test_ascend(void)
{
    scomm_topo_host_t *h = load("ascend");
    scomm_topo_rank_t r[16];
    scomm_topo_link_t m[256];
    scomm_topo_reco_t reco;
    char want[16];
    int i, j, nh;

    ST_ASSERT_EQ(h->naccel, 8);
    for (i = 0; i < 8; i++) {
        ST_ASSERT(strcmp(h->accel[i].type, "npu") == 0);
        ST_ASSERT(strcmp(h->accel[i].model, "Ascend 910B") == 0);
        ST_ASSERT_EQ(h->accel[i].fabric, SCOMM_LINK_HCCS);
    }
    ST_ASSERT_EQ(h->nnic, 9); /* 8 RoCE ports + the 10 GbE port */
    nh = world(h, 8, NULL, r, m);
    for (i = 0; i < 8; i++) {
        snprintf(want, sizeof(want), "hns_%d", i); /* its own port */
        ST_ASSERT(strcmp(r[i].nic_name, want) == 0);
        ST_ASSERT_EQ(r[i].nic_kind, SCOMM_LINK_ROCE);
        ST_ASSERT_EQ(r[i].nic_distance, 1);
        for (j = 0; j < 8; j++) {
            ST_ASSERT_EQ(AT(m, 8, i, j)->kind,
                         (i == j) ? SCOMM_LINK_SELF : SCOMM_LINK_HCCS);
        }
    }
    ST_ASSERT(AT(m, 8, 0, 7)->gbps == 56.0f);
    scomm_topo_recommend(h, r, 8, m, nh, &reco);
    ST_ASSERT(strcmp(reco.preset, "high-bw") == 0);
    nh = world(h, 8, "atlas-b", r, m);
    ST_ASSERT_EQ(AT(m, 16, 3, 11)->kind, SCOMM_LINK_ROCE);
    ST_ASSERT(AT(m, 16, 3, 11)->gbps == 25.0f);
    scomm_topo_recommend(h, NULL, 0, NULL, 1, &reco);
    ST_ASSERT(strcmp(reco.preset, "high-bw") == 0);
    free(h);
}

static void test_tcp(void)
{
    scomm_topo_host_t *h = load("tcp");
    scomm_topo_rank_t r[4];
    scomm_topo_link_t m[16];
    scomm_topo_reco_t reco;
    int nh;

    ST_ASSERT_EQ(h->packages, 1);
    ST_ASSERT_EQ(h->numa_nodes, 1);
    ST_ASSERT_EQ(h->cores, 8);
    ST_ASSERT_EQ(h->naccel, 0);
    ST_ASSERT_EQ(h->nnic, 2); /* lo and veth0 are virtual */
    nh = world(h, 2, NULL, r, m);
    ST_ASSERT_EQ(nh, 1);
    /* both ranks take the 25 GbE port, whatever its name */
    ST_ASSERT(strcmp(r[0].nic_name, "eth0") == 0);
    ST_ASSERT(strcmp(r[1].nic_name, "eth0") == 0);
    ST_ASSERT(r[0].nic_gbps == 3.125f);
    ST_ASSERT_EQ(r[0].numa, 0);
    ST_ASSERT_EQ(AT(m, 2, 0, 1)->kind, SCOMM_LINK_SHM_SAME_NUMA);
    ST_ASSERT_EQ(AT(m, 2, 1, 1)->kind, SCOMM_LINK_SELF);
    scomm_topo_recommend(h, r, 2, m, nh, &reco);
    ST_ASSERT(strcmp(reco.preset, "low-latency") == 0);
    scomm_topo_recommend(h, NULL, 0, NULL, 1, &reco);
    ST_ASSERT(strcmp(reco.preset, "low-cost") == 0);
    nh = world(h, 2, "plain-b", r, m);
    ST_ASSERT_EQ(nh, 2);
    ST_ASSERT_EQ(AT(m, 4, 0, 2)->kind, SCOMM_LINK_TCP);
    ST_ASSERT(AT(m, 4, 0, 2)->gbps == 3.125f);
    ST_ASSERT_EQ(AT(m, 4, 0, 1)->kind, SCOMM_LINK_SHM_SAME_NUMA);
    scomm_topo_recommend(h, r, 4, m, nh, &reco);
    ST_ASSERT(strcmp(reco.preset, "low-cost") == 0);
    free(h);
}

/* Domestic accelerators, UB, CXL: one small fixture each. */
static void test_domestic(void)
{
    static const struct {
        const char *fix;
        const char *type;
        int         n;
        int         fabric;
    } cases[] = {
        {"cambricon", "mlu", 4, SCOMM_LINK_MLULINK},
        {"hygon", "dcu", 4, SCOMM_LINK_XGMI},
        {"kunlunxin", "xpu", 8, SCOMM_LINK_XPULINK},
        {"kunlunxin2", "xpu", 2, SCOMM_LINK_PCIE},
        {"ascend-ub", "npu", 2, SCOMM_LINK_UB},
        {"cxl", "cuda", 1, SCOMM_LINK_PCIE},
    };
    scomm_topo_rank_t r[8];
    scomm_topo_link_t m[64];
    size_t c;
    int i;

    for (c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        scomm_topo_host_t *h = load(cases[c].fix);

        ST_ASSERT_EQ(h->naccel, cases[c].n);
        for (i = 0; i < h->naccel; i++) {
            ST_ASSERT(strcmp(h->accel[i].type, cases[c].type) == 0);
            ST_ASSERT_EQ(h->accel[i].fabric, cases[c].fabric);
        }
        if (cases[c].n >= 2) {
            world(h, cases[c].n, NULL, r, m);
            ST_ASSERT_EQ(AT(m, cases[c].n, 0, 1)->kind, cases[c].fabric);
        }
        if (strcmp(cases[c].fix, "cxl") == 0) {
            ST_ASSERT_EQ(h->ncxl, 1); /* root0 is no memory device */
            ST_ASSERT(strcmp(h->cxl[0].name, "mem0") == 0);
            ST_ASSERT_EQ(h->cxl[0].ram_bytes, (uint64_t)16 << 30);
            ST_ASSERT_EQ(h->cxl[0].numa, 0); /* from its PCI function */
        }
        if (strcmp(cases[c].fix, "ascend-ub") == 0) {
            ST_ASSERT_EQ(h->ub_devices, 1);
        }
        free(h);
    }
}

/* JSON out, JSON in: same host; dump file; refusals. */
static void test_json(void)
{
    scomm_topo_host_t *h = load("dgx"), *g = malloc(sizeof(*g));
    char err[512] = "", path[] = "/tmp/scomm_topo_XXXXXX.json";
    char *text;
    const char *bad;
    int i, fd;

    ST_ASSERT(g != NULL);
    text = scomm_topo_json_text(h, NULL, 0, NULL, 0, NULL, 0);
    ST_ASSERT(text != NULL);
    ST_ASSERT(strstr(text, "\"schema\": \"scomm.topology/1\"") != NULL ||
              strstr(text, "\"schema\":\"scomm.topology/1\"") != NULL);
    ST_ASSERT_OK(scomm_topo_host_from_json(text, strlen(text), "t", g, err,
                                           sizeof(err)));
    free(text);
    ST_ASSERT(strcmp(g->hostname, h->hostname) == 0);
    ST_ASSERT_EQ(g->cores, h->cores);
    ST_ASSERT_EQ(g->l3.size, h->l3.size);
    ST_ASSERT_EQ(g->naccel, h->naccel);
    ST_ASSERT_EQ(g->nnic, h->nnic);
    for (i = 0; i < h->naccel; i++) {
        ST_ASSERT_EQ(g->accel[i].fabric, h->accel[i].fabric);
        ST_ASSERT_EQ(g->accel[i].vendor_id, h->accel[i].vendor_id);
        ST_ASSERT(strcmp(g->accel[i].pci_path, h->accel[i].pci_path) == 0);
    }
    for (i = 0; i < h->nnic; i++) {
        ST_ASSERT_EQ(g->nic[i].kind, h->nic[i].kind);
        ST_ASSERT(g->nic[i].gbps == h->nic[i].gbps);
    }

    /* SCOMM_TOPO_DUMP_FILE then SCOMM_TOPO_FILE=that.json */
    fd = mkstemps(path, 5);
    ST_ASSERT(fd >= 0);
    close(fd);
    setenv("SCOMM_TOPO_DUMP_FILE", path, 1);
    free(h);
    h = load("ascend");
    unsetenv("SCOMM_TOPO_DUMP_FILE");
    ST_ASSERT_OK(scomm_topo_discover(g, path, NULL, err, sizeof(err)));
    ST_ASSERT(strcmp(g->hostname, "atlas-800") == 0);
    ST_ASSERT_EQ(g->naccel, 8);
    ST_ASSERT_EQ(g->accel[5].fabric, SCOMM_LINK_HCCS);
    ST_ASSERT(strncmp(g->source, "json:", 5) == 0);
    unlink(path);

    ST_ASSERT_STATUS(scomm_topo_host_from_json("{\"host\": {\n  \"cpu\": [",
                                               23, "bad.json", g, err,
                                               sizeof(err)),
                     SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT(strncmp(err, "bad.json:2:", 11) == 0);
    bad = "{\"hostname\":\"x\",\"nics\":[{\"kind\":\"nvlink\"}]}";
    ST_ASSERT_STATUS(scomm_topo_host_from_json(bad, strlen(bad), "k.json",
                                               g, err, sizeof(err)),
                     SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT(strstr(err, "kind") != NULL);
    ST_ASSERT_STATUS(scomm_topo_discover(g, "/nonexistent/t.xml", NULL, err,
                                         sizeof(err)),
                     SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT(strstr(err, "/nonexistent/t.xml") != NULL);
    free(g);
    free(h);
}

static void test_profiles(void)
{
    scomm_topo_profile_t pr;
    scomm_preset_t p;

    ST_ASSERT_OK(scomm_preset_get("low-cost", NULL, &p));
    scomm_topo_profile(SCOMM_LINK_TCP, &p, &pr);
    ST_ASSERT_EQ(pr.nconn, 4);
    ST_ASSERT_EQ(pr.chunk, (size_t)1 << 20);
    ST_ASSERT_EQ(pr.zero_copy, 0);
    ST_ASSERT_OK(scomm_preset_get("high-bw", NULL, &p));
    scomm_topo_profile(SCOMM_LINK_INFINIBAND, &p, &pr);
    ST_ASSERT_EQ(pr.align, (size_t)4096);
    ST_ASSERT_EQ(pr.nconn, 4);
    ST_ASSERT_EQ(pr.zero_copy, 1);
    scomm_topo_profile(SCOMM_LINK_SHM_CROSS_NUMA, &p, &pr);
    ST_ASSERT_EQ(pr.chunk, (size_t)512 << 10);
    scomm_topo_profile(SCOMM_LINK_NVLINK, &p, &pr);
    ST_ASSERT_EQ(pr.chunk, (size_t)4 << 20);
    ST_ASSERT_EQ(pr.eager_max, (size_t)0);
}

/* The public calls on one host, pointed at a fixture by the environment. */
static void test_api(void)
{
    char xml[512], root[512], name[32];
    char *json = NULL;

    snprintf(xml, sizeof(xml), "%s/tcp/topo.xml", fixdir);
    snprintf(root, sizeof(root), "%s/tcp/root", fixdir);
    setenv("SCOMM_TOPO_FILE", xml, 1);
    setenv("SCOMM_SYSFS_ROOT", root, 1);
    ST_ASSERT_OK(scomm_topology_json(NULL, &json));
    ST_ASSERT(json != NULL);
    ST_ASSERT(strstr(json, "\"hostname\": \"plain-host\"") != NULL);
    ST_ASSERT(strstr(json, "\"preset\": \"low-cost\"") != NULL);
    ST_ASSERT(strstr(json, "\"world\"") == NULL);
    scomm_topology_free(json);
    ST_ASSERT_OK(scomm_preset_recommend(NULL, name, sizeof(name)));
    ST_ASSERT(strcmp(name, "low-cost") == 0);
    ST_ASSERT_STATUS(scomm_topology_json(NULL, NULL), SCOMM_ERR_INVALID_ARG);
    ST_ASSERT_STATUS(scomm_preset_recommend(NULL, name, 4),
                     SCOMM_ERR_INVALID_ARG);
    setenv("SCOMM_TOPO_FILE", "/nonexistent.json", 1);
    ST_ASSERT_STATUS(scomm_topology_json(NULL, &json), SCOMM_ERR_BAD_CONFIG);
    ST_ASSERT(strstr(scomm_last_error(), "/nonexistent.json") != NULL);
    unsetenv("SCOMM_TOPO_FILE");
    unsetenv("SCOMM_SYSFS_ROOT");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURES_DIR\n", argv[0]);
        return 2;
    }
    fixdir = argv[1];
    unsetenv("SCOMM_TOPO_FILE");
    unsetenv("SCOMM_SYSFS_ROOT");
    unsetenv("SCOMM_TOPO_DUMP_FILE");
    unsetenv("SCOMM_PRESET_FILE");
    test_dgx();
    test_ascend();
    test_tcp();
    test_domestic();
    test_json();
    test_profiles();
    test_api();
    printf("test_topo_fixtures: ok\n");
    return 0;
}
