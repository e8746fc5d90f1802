/*
 * matrix.c - from hosts to ranks: each rank's summary (NUMA node,
 * accelerator, nearest NIC), hosts grouped by hostname + boot id, the
 * world_size x world_size link matrix, and the preset recommendation with
 * its reasons.
 *
 * Invariants:
 *  1. Everything here is a pure function of the summaries, so the fixture
 *     tests exercise exactly the code a live run does.
 *  2. A pair's link is the best path the library could use for it: the
 *     accelerators' fabric when both ranks sit on fabric peers, else PCIe
 *     between accelerators, else shared memory by NUMA node on one host;
 *     between hosts the NIC kind both ends share (InfiniBand, RoCE), else
 *     TCP. Bandwidth is the slower end's.
 *  3. The nearest NIC prefers RDMA ports that are up, then PCIe distance
 *     (1 same root port / switch, 2 same NUMA node, 3 elsewhere), then
 *     speed, then spreads equal choices over local ranks.
 */
#include "topo.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/scomm_int.h"

static const scomm_link_info_t scomm_links[SCOMM_LINK_COUNT] = {
    [SCOMM_LINK_SELF]           = {"self", "local", 20.0, 0.1, 0},
    [SCOMM_LINK_SHM_SAME_NUMA]  = {"shm-same-numa", "local", 12.0, 0.5, 1},
    [SCOMM_LINK_SHM_CROSS_NUMA] = {"shm-cross-numa", "local", 8.0, 1.0, 2},
    [SCOMM_LINK_NVLINK]         = {"nvlink", "nvlink", 300.0, 2.0, 1},
    [SCOMM_LINK_PCIE]           = {"pcie", "pcie", 24.0, 3.0, 2},
    [SCOMM_LINK_HCCS]           = {"hccs", "hccs", 56.0, 2.5, 1},
    [SCOMM_LINK_XGMI]           = {"xgmi", "xgmi", 50.0, 2.5, 1},
    [SCOMM_LINK_MLULINK]        = {"mlu-link", "mlu_link", 50.0, 3.0, 1},
    [SCOMM_LINK_XPULINK]        = {"xpu-link", "xpu_link", 50.0, 3.0, 1},
    [SCOMM_LINK_UB]             = {"ub", "ub", 100.0, 2.0, 1},
    [SCOMM_LINK_INFINIBAND]     = {"infiniband", "infiniband", 25.0, 2.5, 3},
    [SCOMM_LINK_ROCE]           = {"roce", "roce", 12.5, 4.0, 3},
    [SCOMM_LINK_TCP]            = {"tcp", "network", 1.25, 30.0, 3},
};

const scomm_link_info_t *scomm_topo_link_info(scomm_link_kind_t kind)
{
    if (((int)kind < 0) || (kind >= SCOMM_LINK_COUNT)) {
        kind = SCOMM_LINK_TCP;
    }
    return &scomm_links[kind];
}

const char *scomm_topo_link_name(scomm_link_kind_t kind)
{
    return scomm_topo_link_info(kind)->name;
}

int scomm_topo_link_parse(const char *name)
{
    int i;

    for (i = 0; i < SCOMM_LINK_COUNT; i++) {
        if (strcmp(scomm_links[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

/* Leading BDF components two PCI paths share. */
static int scomm_pci_common(const char *a, const char *b)
{
    int common = 0;

    while ((*a != '\0') && (*b != '\0')) {
        size_t la = strcspn(a, "/"), lb = strcspn(b, "/");

        if ((la != lb) || (strncmp(a, b, la) != 0)) {
            break;
        }
        common++;
        a += la;
        b += lb;
        a += (*a == '/');
        b += (*b == '/');
    }
    return common;
}

static int scomm_nic_distance(const scomm_topo_host_t *host, int accel,
                              int numa, const scomm_topo_nic_t *nic)
{
    if ((accel >= 0) && (nic->pci_path[0] != '\0') &&
        (scomm_pci_common(host->accel[accel].pci_path, nic->pci_path) >= 1)) {
        return 1;
    }
    if ((numa < 0) || (nic->numa < 0) || (nic->numa == numa)) {
        return 2;
    }
    return 3;
}

void scomm_topo_rank_fill(const scomm_topo_host_t *host, int rank,
                          int local_rank, int local_size, int cpubind_numa,
                          scomm_topo_rank_t *out)
{
    int i, best = -1, bestd = 4, bestr = 0, eq[SCOMM_TOPO_MAX_NIC], neq = 0;
    int any_up = 0;
    double bests = -1.0;

    memset(out, 0, sizeof(*out));
    snprintf(out->hostname, sizeof(out->hostname), "%s", host->hostname);
    snprintf(out->boot_id, sizeof(out->boot_id), "%s", host->boot_id);
    out->rank       = rank;
    out->local_rank = local_rank;
    out->local_size = local_size;
    out->accel      = -1;
    out->nic        = -1;
    out->numa       = cpubind_numa;
    out->fabric     = -1;
    out->nic_kind   = -1;
    if (host->naccel > 0) {
        const scomm_topo_accel_t *a;

        out->accel = local_rank % host->naccel;
        a          = &host->accel[out->accel];
        snprintf(out->accel_id, sizeof(out->accel_id), "%s:%d", a->type,
                 out->accel);
        snprintf(out->accel_pci, sizeof(out->accel_pci), "%s", a->pci);
        out->fabric      = a->fabric;
        out->fabric_gbps = (float)a->fabric_gbps;
        out->pcie_gbps   = (float)a->pcie_gbps;
        if (a->numa >= 0) {
            out->numa = a->numa;
        }
    }
    if ((out->numa < 0) && (host->numa_nodes == 1)) {
        out->numa = 0;
    }
    for (i = 0; i < host->nnic; i++) {
        any_up |= host->nic[i].up;
    }
    for (i = 0; i < host->nnic; i++) {
        const scomm_topo_nic_t *nic = &host->nic[i];
        int d, r;

        if (any_up && !nic->up) {
            continue;
        }
        r = (nic->kind != SCOMM_LINK_TCP);
        d = scomm_nic_distance(host, out->accel, out->numa, nic);
        if ((best < 0) || (r > bestr) || ((r == bestr) && (d < bestd)) ||
            ((r == bestr) && (d == bestd) && (nic->gbps > bests))) {
            best  = i;
            bestr = r;
            bestd = d;
            bests = nic->gbps;
            neq   = 0;
        }
        if ((r == bestr) && (d == bestd) && (nic->gbps == bests)) {
            eq[neq++] = i;
        }
    }
    if (best >= 0) {
        const scomm_topo_nic_t *nic;

        if (neq > 1) {
            best = eq[local_rank % neq];
        }
        nic               = &host->nic[best];
        out->nic          = best;
        out->nic_kind     = nic->kind;
        out->nic_gbps     = (float)nic->gbps;
        out->nic_distance = bestd;
        snprintf(out->nic_name, sizeof(out->nic_name), "%s", nic->name);
    }
}

static double scomm_pick(double a, double b, double dflt)
{
    if ((a <= 0.0) && (b <= 0.0)) {
        return dflt;
    }
    if (a <= 0.0) {
        return b;
    }
    if (b <= 0.0) {
        return a;
    }
    return SCOMM_MIN(a, b);
}

static void scomm_pair(const scomm_topo_rank_t *a, const scomm_topo_rank_t *b,
                       scomm_topo_link_t *l)
{
    const scomm_link_info_t *info;
    double gbps = 0.0;
    int kind;

    if (a->rank == b->rank) {
        kind = SCOMM_LINK_SELF;
    } else if (a->host_id == b->host_id) {
        if ((a->accel >= 0) && (b->accel >= 0) && (a->accel != b->accel)) {
            if ((a->fabric == b->fabric) && (a->fabric != SCOMM_LINK_PCIE)) {
                kind = a->fabric;
                gbps = scomm_pick(a->fabric_gbps, b->fabric_gbps, 0.0);
            } else {
                kind = SCOMM_LINK_PCIE;
                gbps = scomm_pick(a->pcie_gbps, b->pcie_gbps, 0.0);
            }
        } else if ((a->numa >= 0) && (a->numa == b->numa)) {
            kind = SCOMM_LINK_SHM_SAME_NUMA;
        } else {
            kind = SCOMM_LINK_SHM_CROSS_NUMA;
        }
    } else if ((a->nic_kind == b->nic_kind) &&
               ((a->nic_kind == SCOMM_LINK_INFINIBAND) ||
                (a->nic_kind == SCOMM_LINK_ROCE))) {
        kind = a->nic_kind;
        gbps = scomm_pick(a->nic_gbps, b->nic_gbps, 0.0);
    } else {
        kind = SCOMM_LINK_TCP;
        gbps = scomm_pick(a->nic_gbps, b->nic_gbps, 0.0);
    }
    info      = scomm_topo_link_info((scomm_link_kind_t)kind);
    l->kind   = kind;
    l->gbps   = (float)((gbps > 0.0) ? gbps : info->gbps);
    l->lat_us = (float)info->lat_us;
    l->hops   = info->hops;
}

int scomm_topo_matrix(scomm_topo_rank_t *ranks, int n, scomm_topo_link_t *m)
{
    int i, j, nhosts = 0;

    for (i = 0; i < n; i++) {
        ranks[i].host_id = -1;
        for (j = 0; j < i; j++) {
            if ((strcmp(ranks[j].hostname, ranks[i].hostname) == 0) &&
                (strcmp(ranks[j].boot_id, ranks[i].boot_id) == 0)) {
                ranks[i].host_id = ranks[j].host_id;
                break;
            }
        }
        if (ranks[i].host_id < 0) {
            ranks[i].host_id = nhosts++;
        }
    }
    if (m != NULL) {
        for (i = 0; i < n; i++) {
            for (j = 0; j < n; j++) {
                scomm_pair(&ranks[i], &ranks[j], &m[(size_t)i * n + j]);
            }
        }
    }
    return nhosts;
}

static void scomm_reason(scomm_topo_reco_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void scomm_reason(scomm_topo_reco_t *r, const char *fmt, ...)
{
    va_list ap;

    if (r->nreasons == SCOMM_TOPO_REASON_MAX) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(r->reasons[r->nreasons++], sizeof(r->reasons[0]), fmt, ap);
    va_end(ap);
}

static void scomm_reco_host(const scomm_topo_host_t *host,
                            scomm_topo_reco_t *r)
{
    int i, fab = -1, rdma = -1, tcp = -1;

    for (i = 0; i < host->naccel; i++) {
        if ((host->accel[i].fabric != SCOMM_LINK_PCIE) && (fab < 0)) {
            fab = i;
        }
    }
    for (i = 0; i < host->nnic; i++) {
        const scomm_topo_nic_t *n = &host->nic[i];

        if (!n->up) {
            continue;
        }
        if ((n->kind != SCOMM_LINK_TCP) &&
            ((rdma < 0) || (n->gbps > host->nic[rdma].gbps))) {
            rdma = i;
        }
        if ((n->kind == SCOMM_LINK_TCP) &&
            ((tcp < 0) || (n->gbps > host->nic[tcp].gbps))) {
            tcp = i;
        }
    }
    if ((fab >= 0) || (rdma >= 0)) {
        snprintf(r->preset, sizeof(r->preset), "high-bw");
        if (fab >= 0) {
            scomm_reason(r, "%d %s accelerators on %s (%.0f GB/s per peer)",
                         host->naccel, host->accel[fab].vendor,
                         scomm_topo_link_name(host->accel[fab].fabric),
                         host->accel[fab].fabric_gbps);
        }
        if (rdma >= 0) {
            scomm_reason(r, "RDMA port %s up: %s at %.1f GB/s",
                         host->nic[rdma].name,
                         scomm_topo_link_name(host->nic[rdma].kind),
                         host->nic[rdma].gbps);
        }
    } else if (tcp >= 0) {
        snprintf(r->preset, sizeof(r->preset), "low-cost");
        scomm_reason(r, "no RDMA port and no accelerator fabric: KV leaves "
                     "the host over TCP");
        if (host->nic[tcp].gbps > 0.0) {
            scomm_reason(r, "fastest NIC %s at %.2f GB/s (%.0f Gb/s)",
                         host->nic[tcp].name, host->nic[tcp].gbps,
                         host->nic[tcp].gbps * 8.0);
        } else {
            scomm_reason(r, "NIC %s reports no speed (virtual NIC?)",
                         host->nic[tcp].name);
        }
        scomm_reason(r, "FP8 + LZ4 cut the bytes on a slow wire");
    } else {
        snprintf(r->preset, sizeof(r->preset), "low-latency");
        scomm_reason(r, "no NIC up: only ranks on this host, over shared "
                     "memory");
    }
}

void scomm_topo_recommend(const scomm_topo_host_t *host,
                          const scomm_topo_rank_t *ranks, int n,
                          const scomm_topo_link_t *m, int nhosts,
                          scomm_topo_reco_t *out)
{
    int i, j, kind, cross = 0, rdma = 1, fabric = -1, far = 0;
    double minbw = 0.0;

    memset(out, 0, sizeof(*out));
    if ((ranks == NULL) || (m == NULL) || (n <= 1)) {
        scomm_reco_host(host, out);
        return;
    }
    for (i = 0; i < n; i++) {
        if (ranks[i].nic_distance == 3) {
            far++;
        }
        for (j = 0; j < n; j++) {
            const scomm_topo_link_t *l = &m[(size_t)i * n + j];

            kind = l->kind;
            if (ranks[i].host_id != ranks[j].host_id) {
                cross = 1;
                rdma &= (kind == SCOMM_LINK_INFINIBAND) ||
                        (kind == SCOMM_LINK_ROCE);
                minbw = (minbw == 0.0) ? l->gbps : SCOMM_MIN(minbw, l->gbps);
            } else if ((i != j) && (kind != SCOMM_LINK_PCIE) &&
                       (kind != SCOMM_LINK_SHM_SAME_NUMA) &&
                       (kind != SCOMM_LINK_SHM_CROSS_NUMA)) {
                fabric = kind;
            }
        }
    }
    if (cross && rdma) {
        snprintf(out->preset, sizeof(out->preset), "high-bw");
        scomm_reason(out, "%d hosts joined by RDMA, slowest pair %.1f GB/s",
                     nhosts, minbw);
    } else if (cross) {
        snprintf(out->preset, sizeof(out->preset), "low-cost");
        scomm_reason(out, "%d hosts and some pairs cross them over TCP "
                     "(%.2f GB/s)", nhosts, minbw);
    } else if (fabric >= 0) {
        snprintf(out->preset, sizeof(out->preset), "high-bw");
        scomm_reason(out, "all %d ranks on one host, accelerators on %s", n,
                     scomm_topo_link_name((scomm_link_kind_t)fabric));
    } else {
        snprintf(out->preset, sizeof(out->preset), "low-latency");
        scomm_reason(out, "all %d ranks on one host: shared memory, no NIC "
                     "in the path", n);
    }
    if (far > 0) {
        scomm_reason(out, "%d ranks have their nearest NIC on another NUMA "
                     "node", far);
    }
}
