/*
 * probe.c - `scomm probe`: this host's topology as a table (CPUs, caches,
 * accelerators, NICs, CXL), with --world every rank of the job (under
 * `scomm launch -n N -- scomm probe --world`): hosts, each rank's NUMA
 * node, device and nearest NIC, the link matrix; then the recommended
 * preset and why, and the vendor libraries (NCCL, RCCL, HCCL, CNCL, BKCL)
 * that load here, with versions, and the libfabric providers the ofi
 * transport could use. --json prints the same as scomm_topology_json()
 * (without the vendor and provider lists).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "scomm.h"
#include "api/topo_world.h"
#include "transport/ofi.h"

static void probe_usage(FILE *f)
{
    fprintf(f,
            "usage: scomm probe [--json] [--world] [--topo-file FILE] "
            "[--sysfs-root DIR]\n"
            "  --json          machine-readable (schema scomm.topology/1)\n"
            "  --world         every rank of the job (run under scomm launch "
            "or mpirun);\n"
            "                  rank 0 prints\n"
            "  --topo-file F   read hwloc XML or scomm JSON instead of this "
            "machine\n"
            "                  (same as SCOMM_TOPO_FILE)\n"
            "  --sysfs-root D  read devices from the sysfs tree under D "
            "(SCOMM_SYSFS_ROOT)\n"
            "  -h, --help      this text\n");
}

static const char *probe_size(uint64_t bytes, char *buf, size_t len)
{
    if (bytes == 0) {
        snprintf(buf, len, "-");
    } else if ((bytes >= (1ull << 30)) && ((bytes % (1ull << 30)) == 0)) {
        snprintf(buf, len, "%llu GiB", (unsigned long long)(bytes >> 30));
    } else if (bytes >= (1ull << 30)) {
        snprintf(buf, len, "%.1f GiB", (double)bytes / (double)(1ull << 30));
    } else if (bytes >= (1ull << 20)) {
        snprintf(buf, len, "%.4g MiB", (double)bytes / (double)(1ull << 20));
    } else {
        snprintf(buf, len, "%.4g KiB", (double)bytes / 1024.0);
    }
    return buf;
}

static void probe_cache(const char *name, const scomm_topo_cache_t *c)
{
    char b[32];

    if (c->count > 0) {
        printf("  %s %s x%d", name, probe_size(c->size, b, sizeof(b)),
               c->count);
    }
}

static void probe_host(const scomm_topo_host_t *h)
{
    char b[32];
    int i;

    printf("host          %s (boot id %.8s)\n", h->hostname,
           (h->boot_id[0] != '\0') ? h->boot_id : "?");
    printf("source        %s, devices from sysfs %s\n", h->source,
           (h->sysfs_root[0] != '\0') ? h->sysfs_root : "-");
    printf("cpu           %d package%s, %d NUMA node%s, %d cores, %d PUs, "
           "%s memory\n", h->packages, (h->packages == 1) ? "" : "s",
           h->numa_nodes, (h->numa_nodes == 1) ? "" : "s", h->cores, h->pus,
           probe_size(h->memory, b, sizeof(b)));
    printf("caches       ");
    probe_cache("L1d", &h->l1d);
    probe_cache("L1i", &h->l1i);
    probe_cache("L2", &h->l2);
    probe_cache("L3", &h->l3);
    printf("\n");
    printf("pci devices   %d%s%s\n", h->pci_devices,
           (h->nvswitches > 0) ? ", NVSwitches: " : "",
           (h->nvswitches > 0) ? "yes" : "");
    if (h->naccel == 0) {
        printf("accelerators  none\n");
    } else {
        printf("accelerators  %d\n", h->naccel);
        printf("  %-3s %-10s %-9s %-12s %-13s %4s %-9s %9s %9s\n", "#",
               "id", "vendor", "model", "pci", "numa", "fabric",
               "fab GB/s", "pcie GB/s");
        for (i = 0; i < h->naccel; i++) {
            const scomm_topo_accel_t *a = &h->accel[i];
            char id[24];

            snprintf(id, sizeof(id), "%s:%d", a->type, i);
            printf("  %-3d %-10s %-9s %-12s %-13s %4d %-9s %9.1f %9.1f\n",
                   i, id, a->vendor, a->model, a->pci, a->numa,
                   scomm_topo_link_name((scomm_link_kind_t)a->fabric),
                   a->fabric_gbps, a->pcie_gbps);
        }
    }
    if (h->nnic == 0) {
        printf("nics          none\n");
    } else {
        printf("nics          %d\n", h->nnic);
        printf("  %-3s %-12s %-12s %-11s %-13s %4s %9s %-5s\n", "#", "name",
               "netdev", "kind", "pci", "numa", "GB/s", "state");
        for (i = 0; i < h->nnic; i++) {
            const scomm_topo_nic_t *n = &h->nic[i];

            printf("  %-3d %-12s %-12s %-11s %-13s %4d %9.2f %-5s\n", i,
                   n->name, (n->netdev[0] != '\0') ? n->netdev : "-",
                   scomm_topo_link_name((scomm_link_kind_t)n->kind),
                   (n->pci[0] != '\0') ? n->pci : "-", n->numa, n->gbps,
                   n->up ? "up" : "down");
        }
    }
    if (h->ncxl > 0) {
        printf("cxl memory    %d\n", h->ncxl);
        for (i = 0; i < h->ncxl; i++) {
            char r[32], p[32];

            printf("  %-6s pci %-13s numa %d ram %s pmem %s\n",
                   h->cxl[i].name, h->cxl[i].pci, h->cxl[i].numa,
                   probe_size(h->cxl[i].ram_bytes, r, sizeof(r)),
                   probe_size(h->cxl[i].pmem_bytes, p, sizeof(p)));
        }
    }
    if (h->ub_devices > 0) {
        printf("unifiedbus    %d devices\n", h->ub_devices);
    }
}

/* Short matrix labels. */
static const char *probe_short(int kind)
{
    static const char *const s[SCOMM_LINK_COUNT] = {
        "X", "SHM", "SHMx", "NVL", "PCIe", "HCCS", "XGMI", "MLU",
        "XPU", "UB", "IB", "RoCE", "TCP"};

    return ((kind >= 0) && (kind < SCOMM_LINK_COUNT)) ? s[kind] : "?";
}

static void probe_world(const scomm_topo_world_t *w)
{
    int i, j, h, cnt;

    printf("\nworld         %d ranks on %d host%s\n", w->n, w->nhosts,
           (w->nhosts == 1) ? "" : "s");
    for (h = 0; h < w->nhosts; h++) {
        cnt = 0;
        for (i = 0; i < w->n; i++) {
            cnt += (w->ranks[i].host_id == h);
        }
        for (i = 0; i < w->n; i++) {
            if (w->ranks[i].host_id == h) {
                printf("  node%d %s: %d local rank%s\n", h,
                       w->ranks[i].hostname, cnt, (cnt == 1) ? "" : "s");
                break;
            }
        }
    }
    printf("  %-5s %-5s %-6s %4s %-16s %-12s %-10s %s\n", "rank", "node",
           "local", "numa", "device", "nic", "nic kind", "distance");
    for (i = 0; i < w->n; i++) {
        const scomm_topo_rank_t *r = &w->ranks[i];
        char dev[48];

        if (r->accel >= 0) {
            snprintf(dev, sizeof(dev), "%s", r->accel_id);
        } else {
            snprintf(dev, sizeof(dev), "cpu:%d", r->local_rank);
        }
        printf("  %-5d %-5d %-6d %4d %-16s %-12s %-10s %d\n", r->rank,
               r->host_id, r->local_rank, r->numa, dev,
               (r->nic >= 0) ? r->nic_name : "-",
               (r->nic >= 0) ? scomm_topo_link_name(
                                   (scomm_link_kind_t)r->nic_kind) : "-",
               r->nic_distance);
    }
    printf("\nlink matrix (kind / GB/s)\n      ");
    for (j = 0; j < w->n; j++) {
        printf(" %9d", j);
    }
    printf("\n");
    for (i = 0; i < w->n; i++) {
        printf("  %3d ", i);
        for (j = 0; j < w->n; j++) {
            const scomm_topo_link_t *l = &w->matrix[(size_t)i * w->n + j];
            char cell[16];

            snprintf(cell, sizeof(cell), "%s/%.3g", probe_short(l->kind),
                     (double)l->gbps);
            printf(" %9s", cell);
        }
        printf("\n");
    }
    printf("  (X self, SHM same NUMA, SHMx cross NUMA, NVL NVLink, IB "
           "InfiniBand)\n");
}

/* Vendor libraries (src/backend): which load here, their versions, and the
 * device runtime each one's completion events go through. */
static void probe_vendors(void)
{
    scomm_backend_info_t info;
    int32_t i;

    printf("\nvendor libraries (SCOMM_BACKEND=...)\n");
    printf("  %-5s %-6s %-10s %s\n", "name", "found", "version",
           "library / how to get it");
    for (i = 0; i < scomm_backend_count(); i++) {
        if (scomm_backend_probe(i, &info) != SCOMM_OK) {
            continue;
        }
        printf("  %-5s %-6s %-10s %s\n", info.name,
               info.found ? "yes" : "no",
               info.found ? info.version : "-",
               info.found ? info.library : info.detail);
        if (info.found) {
            printf("  %-5s %-6s %-10s runtime: %s\n", "", "", "",
                   info.runtime);
        }
    }
}

/* libfabric providers for SCOMM_TRANSPORTS=ofi (transport/ofi.h). */
static void probe_ofi(void)
{
    char text[4096];
    char *line, *save = NULL;

    printf("\nofi providers (SCOMM_TRANSPORTS=ofi; SCOMM_OFI_PROVIDER, "
           "else the one marked *; tcp binds the interface of the route to "
           "the master)\n");
    if (scomm_ofi_list_providers(text, sizeof(text)) > 0) {
        printf("  %-1s %-16s %-12s %s\n", "", "provider", "domain",
               "fabric");
    }
    for (line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        printf("  %s\n", line);
    }
}

int scomm_cli_probe(int argc, char **argv)
{
    const char *topo_file = NULL, *sysfs_root = NULL;
    int json = 0, world = 0, i, rank = 0, rc, first;
    const scomm_cli_opt_t opts[] = {
        CLI_FLAG("json", 0, &json),
        CLI_FLAG("world", 0, &world),
        CLI_STR("topo-file", 0, &topo_file),
        CLI_STR("sysfs-root", 0, &sysfs_root),
    };
    const scomm_cli_cmd_t cmd = {"probe", probe_usage, opts,
                                 CLI_NOPTS(opts), 0, 0};
    scomm_topo_world_t *w = NULL;
    scomm_comm_t *comm    = NULL;
    scomm_status_t status;
    char *text;

    rc = scomm_cli_parse(&cmd, argc, argv, &first);
    if (rc >= 0) {
        return rc;
    }
    if (topo_file != NULL) {
        setenv("SCOMM_TOPO_FILE", topo_file, 1);
    }
    if (sysfs_root != NULL) {
        setenv("SCOMM_SYSFS_ROOT", sysfs_root, 1);
    }
    if (world) {
        status = scomm_init_from_env(&comm);
        if (status != SCOMM_OK) {
            fprintf(stderr, "scomm probe --world: %s: %s\n",
                    scomm_strerror(status), scomm_last_error());
            return 1;
        }
        rank = scomm_rank(comm);
    }
    status = scomm_topo_world(comm, &w);
    if (status != SCOMM_OK) {
        fprintf(stderr, "scomm probe: %s: %s\n", scomm_strerror(status),
                (comm != NULL) ? scomm_comm_last_error(comm)
                               : scomm_last_error());
        if (comm != NULL) {
            scomm_comm_destroy(comm);
        }
        return 1;
    }
    if (rank == 0) {
        if (json) {
            text = scomm_topo_json_text(&w->host, w->ranks, w->n, w->matrix,
                                        w->nhosts, &w->reco, 2);
            if (text == NULL) {
                fprintf(stderr, "scomm probe: out of memory\n");
                status = SCOMM_ERR_NO_MEMORY;
            } else {
                printf("%s\n", text);
                free(text);
            }
        } else {
            probe_host(&w->host);
            if (w->n > 0) {
                probe_world(w);
            }
            printf("\nrecommended preset: %s\n", w->reco.preset);
            for (i = 0; i < w->reco.nreasons; i++) {
                printf("  - %s\n", w->reco.reasons[i]);
            }
            printf("  (scomm presets show %s)\n", w->reco.preset);
            probe_vendors();
            probe_ofi();
        }
        fflush(stdout);
    }
    scomm_topo_world_free(w);
    if (comm != NULL) {
        scomm_comm_destroy(comm);
    }
    return (status == SCOMM_OK) ? 0 : 1;
}
