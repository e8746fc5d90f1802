/*
 * discover.c - what this host holds: CPUs, NUMA nodes and caches from
 * hwloc (or a saved hwloc XML; from sysfs in a build without hwloc),
 * devices from sysfs: accelerators by PCI vendor id, NVSwitches, NICs
 * (/sys/class/net) and RDMA ports (/sys/class/infiniband), CXL memory
 * devices (/sys/bus/cxl), AMD/Hygon xGMI links (/sys/class/kfd),
 * UnifiedBus devices (/sys/bus/ub); NVLink counts from NVML when
 * libnvidia-ml can be dlopen'ed; the NUMA node of the caller's binding.
 *
 * Invariants:
 *  1. Every sysfs path goes through scomm_sysfs_path(), which prefixes
 *     SCOMM_SYSFS_ROOT, so a fixture tree replaces the machine entirely
 *     (a fixture root also turns NVML off: its answers would be the
 *     machine's).
 *  2. SCOMM_TOPO_FILE ending in ".json" replaces discovery altogether (our
 *     own dump, topo_json.c); any other name is an hwloc XML for the CPU
 *     side, and devices still come from sysfs.
 *  3. Nothing here fails for a missing sysfs entry: an absent file is an
 *     unknown value (-1, 0 or ""), never an error. Only an unreadable
 *     topology file or an hwloc failure is.
 *  4. Without hwloc (SCOMM_HAVE_HWLOC undefined) the CPU side comes from
 *     /sys/devices/system/{cpu,node} and counts what hwloc would: the CPUs
 *     the cgroup allows, cores and caches by their first CPU, NUMA nodes
 *     (source "sysfs"; unit.test_topo_sysfs compares the two). An hwloc
 *     XML in SCOMM_TOPO_FILE is then SCOMM_ERR_UNSUPPORTED.
 */
#include "topo.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#ifdef SCOMM_HAVE_HWLOC
#include <hwloc.h>
#endif
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/features.h"
#include "core/module.h"
#include "core/scomm_int.h"

/* Knobs (registry rows, core/config.h), read at each discovery. */
static const scomm_param_t scomm_topo_params[] = {
    {.name = "SCOMM_TOPO_FILE", .defval = "", .type = SCOMM_PARAM_STRING,
     .help = "topology from this file instead of the machine: *.json (our "
             "dump, replaces discovery) or an hwloc XML (CPU side; devices "
             "still from sysfs)"},
    {.name = "SCOMM_SYSFS_ROOT", .defval = "", .type = SCOMM_PARAM_STRING,
     .help = "read sysfs under this directory instead of / (fixtures; "
             "turns NVML off)"},
    {.name = "SCOMM_TOPO_DUMP_FILE", .defval = "",
     .type = SCOMM_PARAM_STRING,
     .help = "write the discovered host topology to this JSON file"},
};

const scomm_module_t scomm_module_topo = {
    .name    = "topo",
    .params  = scomm_topo_params,
    .nparams = SCOMM_ARRAY_SIZE(scomm_topo_params),
};

/* ---- vendors ---- */

static const scomm_topo_vendor_t scomm_vendors[] = {
    {0x10de, "nvidia", "cuda", SCOMM_LINK_NVLINK, 300.0,
     "NVSwitch PCI functions (class 0x0680) or NVML active NVLinks"},
    {0x1002, "amd", "rocm", SCOMM_LINK_XGMI, 50.0,
     "/sys/class/kfd/kfd/topology/nodes/*/io_links/*/properties type 11"},
    {0x19e5, "huawei", "npu", SCOMM_LINK_HCCS, 56.0,
     "Ascend 910 family (device 0xd801/0xd802/0xd803), >= 2 NPUs; "
     "/sys/bus/ub/devices present: UnifiedBus"},
    {0xcabc, "cambricon", "mlu", SCOMM_LINK_MLULINK, 50.0,
     "MLU290/MLU370/MLU590 families (device 0x0290/0x0370/0x0590), "
     ">= 2 MLUs"},
    {0x1d94, "hygon", "dcu", SCOMM_LINK_XGMI, 46.0,
     "/sys/class/kfd/kfd/topology/nodes/*/io_links/*/properties type 11"},
    {0x1d22, "kunlunxin", "xpu", SCOMM_LINK_XPULINK, 50.0,
     ">= 8 XPUs on one host (R480-X8 style board)"},
    {0x1da3, "habana", "hpu", SCOMM_LINK_PCIE, 0.0, "none (PCIe)"},
    {0x1ed5, "moorethreads", "musa", SCOMM_LINK_PCIE, 0.0, "none (PCIe)"},
    {0x9999, "metax", "maca", SCOMM_LINK_PCIE, 0.0, "none (PCIe)"},
    {0x1e3e, "iluvatar", "corex", SCOMM_LINK_PCIE, 0.0, "none (PCIe)"},
    {0x1e36, "enflame", "gcu", SCOMM_LINK_PCIE, 0.0, "none (PCIe)"},
};

const scomm_topo_vendor_t *scomm_topo_vendor(uint16_t vendor_id)
{
    size_t i;

    for (i = 0; i < SCOMM_ARRAY_SIZE(scomm_vendors); i++) {
        if (scomm_vendors[i].vendor_id == vendor_id) {
            return &scomm_vendors[i];
        }
    }
    return NULL;
}

const scomm_topo_vendor_t *scomm_topo_vendors(int *n)
{
    *n = (int)SCOMM_ARRAY_SIZE(scomm_vendors);
    return scomm_vendors;
}

/* ---- sysfs helpers ---- */

typedef struct scomm_sysfs {
    const char *root; /* "" for the machine */
} scomm_sysfs_t;

static void scomm_sysfs_path(const scomm_sysfs_t *fs, char *out,
                             size_t outlen, const char *path)
{
    snprintf(out, outlen, "%s%s", fs->root, path);
}

/* First line of root+path without the newline; -1 when unreadable. */
static int scomm_sysfs_read(const scomm_sysfs_t *fs, const char *path,
                            char *buf, size_t len)
{
    char full[PATH_MAX];
    FILE *f;
    size_t n;

    scomm_sysfs_path(fs, full, sizeof(full), path);
    f = fopen(full, "r");
    if (f == NULL) {
        buf[0] = '\0';
        return -1;
    }
    if (fgets(buf, (int)len, f) == NULL) {
        buf[0] = '\0';
        fclose(f);
        return -1;
    }
    fclose(f);
    n = strlen(buf);
    while ((n > 0) && ((buf[n - 1] == '\n') || (buf[n - 1] == ' '))) {
        buf[--n] = '\0';
    }
    return 0;
}

static long scomm_sysfs_long(const scomm_sysfs_t *fs, const char *path,
                             long dflt)
{
    char buf[64], *end;
    long v;

    if (scomm_sysfs_read(fs, path, buf, sizeof(buf)) != 0) {
        return dflt;
    }
    errno = 0;
    v     = strtol(buf, &end, 0);
    return ((errno != 0) || (end == buf)) ? dflt : v;
}

static int scomm_is_bdf(const char *s)
{
    unsigned a, b, c, d;
    char tail;

    return (strlen(s) == 12) &&
           (sscanf(s, "%4x:%2x:%2x.%1x%c", &a, &b, &c, &d, &tail) == 4);
}

/* PCI path of a sysfs device link: the BDFs along its real path. The
 * device's own BDF (the last one) goes to bdf. */
static void scomm_sysfs_pci_path(const scomm_sysfs_t *fs, const char *link,
                                 char *path, size_t pathlen, char *bdf,
                                 size_t bdflen)
{
    char full[PATH_MAX], real[PATH_MAX], *tok, *save = NULL;
    size_t off = 0;

    path[0] = '\0';
    bdf[0]  = '\0';
    scomm_sysfs_path(fs, full, sizeof(full), link);
    if (realpath(full, real) == NULL) {
        return;
    }
    for (tok = strtok_r(real, "/", &save); tok != NULL;
         tok = strtok_r(NULL, "/", &save)) {
        if (!scomm_is_bdf(tok)) {
            continue;
        }
        if (off + strlen(tok) + 2 < pathlen) {
            off += (size_t)snprintf(path + off, pathlen - off, "%s%s",
                                    (off > 0) ? "/" : "", tok);
        }
        snprintf(bdf, bdflen, "%s", tok);
    }
}

/* PCIe link of a device in GB/s: GT/s x width x encoding / 8. */
static double scomm_sysfs_pcie_gbps(const scomm_sysfs_t *fs, const char *bdf)
{
    char p[256], buf[64];
    double gts;
    long width;

    snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/current_link_speed",
             bdf);
    if (scomm_sysfs_read(fs, p, buf, sizeof(buf)) != 0) {
        return 0.0;
    }
    gts = strtod(buf, NULL);
    snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/current_link_width",
             bdf);
    width = scomm_sysfs_long(fs, p, 0);
    if ((gts <= 0.0) || (width <= 0)) {
        return 0.0;
    }
    /* 8b/10b up to 5 GT/s, 128b/130b from 8 GT/s on */
    return gts * (double)width * ((gts < 8.0) ? 0.8 : 128.0 / 130.0) / 8.0;
}

static int scomm_sysfs_numa(const scomm_sysfs_t *fs, const char *bdf)
{
    char p[256];

    snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/numa_node", bdf);
    return (int)scomm_sysfs_long(fs, p, -1);
}

static int scomm_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entry names of a directory (no dot entries); NULL when absent.
 * Free with scomm_dir_free. */
static char **scomm_dir_list(const scomm_sysfs_t *fs, const char *path,
                             int *n)
{
    char full[PATH_MAX];
    struct dirent *de;
    char **v = NULL, **nv;
    int cap = 0;
    DIR *d;

    *n = 0;
    scomm_sysfs_path(fs, full, sizeof(full), path);
    d = opendir(full);
    if (d == NULL) {
        return NULL;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        if (*n == cap) {
            cap = (cap == 0) ? 16 : cap * 2;
            nv  = realloc(v, (size_t)cap * sizeof(*v));
            if (nv == NULL) {
                break;
            }
            v = nv;
        }
        v[*n] = strdup(de->d_name);
        if (v[*n] == NULL) {
            break;
        }
        (*n)++;
    }
    closedir(d);
    if (*n > 1) {
        qsort(v, (size_t)*n, sizeof(*v), scomm_name_cmp);
    }
    return v;
}

static void scomm_dir_free(char **v, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* ---- NVML (dlopen, no header needed) ---- */

typedef int (*scomm_nvml_init_t)(void);
typedef int (*scomm_nvml_by_pci_t)(const char *, void **);
typedef int (*scomm_nvml_link_t)(void *, unsigned, int *);

#define SCOMM_NVLINK_MAX 18

/* Active NVLinks per NVIDIA accelerator; returns 1 when NVML answered. */
static int scomm_nvml_links(scomm_topo_host_t *host)
{
    scomm_nvml_init_t init;
    scomm_nvml_by_pci_t by_pci;
    scomm_nvml_link_t state;
    scomm_nvml_init_t shutdown;
    void *lib, *dev;
    int i, active, answered = 0;
    unsigned l;

    lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        return 0;
    }
    init     = (scomm_nvml_init_t)dlsym(lib, "nvmlInit_v2");
    shutdown = (scomm_nvml_init_t)dlsym(lib, "nvmlShutdown");
    by_pci   = (scomm_nvml_by_pci_t)dlsym(lib,
                                          "nvmlDeviceGetHandleByPciBusId_v2");
    state    = (scomm_nvml_link_t)dlsym(lib, "nvmlDeviceGetNvLinkState");
    if ((init == NULL) || (by_pci == NULL) || (state == NULL) ||
        (init() != 0)) {
        dlclose(lib);
        return 0;
    }
    for (i = 0; i < host->naccel; i++) {
        scomm_topo_accel_t *a = &host->accel[i];

        if ((a->vendor_id != 0x10de) || (by_pci(a->pci, &dev) != 0)) {
            continue;
        }
        answered = 1;
        for (l = 0; l < SCOMM_NVLINK_MAX; l++) {
            if ((state(dev, l, &active) == 0) && (active != 0)) {
                a->fabric_links++;
            }
        }
    }
    if (shutdown != NULL) {
        shutdown();
    }
    dlclose(lib);
    return answered;
}

/* ---- devices ---- */

static int scomm_is_accel_class(unsigned long cls)
{
    unsigned long base = cls >> 16, sub = (cls >> 8) & 0xff;

    return (base == 0x03) || (base == 0x12) ||
           ((base == 0x0b) && (sub == 0x40));
}

static const char *scomm_accel_model(uint16_t vendor, uint16_t device)
{
    if (vendor == 0x19e5) {
        switch (device) {
        case 0xd100: return "Ascend 310";
        case 0xd500: return "Ascend 310P";
        case 0xd801: return "Ascend 910";
        case 0xd802: return "Ascend 910B";
        case 0xd803: return "Ascend 910C";
        default: break;
        }
    }
    if (vendor == 0xcabc) {
        switch (device) {
        case 0x0290: return "MLU290";
        case 0x0370: return "MLU370";
        case 0x0590: return "MLU590";
        default: break;
        }
    }
    return NULL;
}

static int scomm_kfd_has_xgmi(const scomm_sysfs_t *fs)
{
    const char *base = "/sys/class/kfd/kfd/topology/nodes";
    char **nodes, **links, p[512], line[128];
    int nn, nl, i, j, found = 0;
    FILE *f;

    nodes = scomm_dir_list(fs, base, &nn);
    for (i = 0; (i < nn) && !found; i++) {
        snprintf(p, sizeof(p), "%s/%s/io_links", base, nodes[i]);
        links = scomm_dir_list(fs, p, &nl);
        for (j = 0; (j < nl) && !found; j++) {
            char full[PATH_MAX];

            snprintf(p, sizeof(p), "%s/%s/io_links/%s/properties", base,
                     nodes[i], links[j]);
            scomm_sysfs_path(fs, full, sizeof(full), p);
            f = fopen(full, "r");
            if (f == NULL) {
                continue;
            }
            while (fgets(line, sizeof(line), f) != NULL) {
                /* CRAT io link type 11 is XGMI */
                if (strcmp(line, "type 11\n") == 0) {
                    found = 1;
                }
            }
            fclose(f);
        }
        scomm_dir_free(links, nl);
    }
    scomm_dir_free(nodes, nn);
    return found;
}

/* Accelerators and NVSwitches from /sys/bus/pci/devices. */
static void scomm_scan_pci(const scomm_sysfs_t *fs, scomm_topo_host_t *host)
{
    const scomm_topo_vendor_t *v;
    char **ents, p[256];
    unsigned long vendor, device, cls;
    int n, i;

    ents = scomm_dir_list(fs, "/sys/bus/pci/devices", &n);
    for (i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vendor", ents[i]);
        vendor = (unsigned long)scomm_sysfs_long(fs, p, 0);
        snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/device", ents[i]);
        device = (unsigned long)scomm_sysfs_long(fs, p, 0);
        snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/class", ents[i]);
        cls = (unsigned long)scomm_sysfs_long(fs, p, 0);
        if ((vendor == 0x10de) && ((cls >> 8) == 0x0680)) {
            host->nvswitches++;
            continue;
        }
        v = scomm_topo_vendor((uint16_t)vendor);
        if ((v == NULL) || !scomm_is_accel_class(cls) ||
            (host->naccel == SCOMM_TOPO_MAX_ACCEL)) {
            continue;
        }
        {
            scomm_topo_accel_t *a = &host->accel[host->naccel++];
            const char *model;

            memset(a, 0, sizeof(*a));
            snprintf(a->vendor, sizeof(a->vendor), "%s", v->vendor);
            snprintf(a->type, sizeof(a->type), "%s", v->type);
            a->vendor_id = (uint16_t)vendor;
            a->device_id = (uint16_t)device;
            model        = scomm_accel_model(a->vendor_id, a->device_id);
            if (model != NULL) {
                snprintf(a->model, sizeof(a->model), "%s", model);
            } else {
                snprintf(a->model, sizeof(a->model), "0x%04lx", device);
            }
            snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s", ents[i]);
            scomm_sysfs_pci_path(fs, p, a->pci_path, sizeof(a->pci_path),
                                 a->pci, sizeof(a->pci));
            if (a->pci[0] == '\0') {
                snprintf(a->pci, sizeof(a->pci), "%s", ents[i]);
                snprintf(a->pci_path, sizeof(a->pci_path), "%s", ents[i]);
            }
            a->numa      = scomm_sysfs_numa(fs, ents[i]);
            a->pcie_gbps = scomm_sysfs_pcie_gbps(fs, ents[i]);
            a->fabric    = SCOMM_LINK_PCIE;
        }
    }
    scomm_dir_free(ents, n);
}

/* Decide each accelerator's fabric from the evidence (see the table). */
static void scomm_accel_fabrics(const scomm_sysfs_t *fs,
                                scomm_topo_host_t *host)
{
    int i, count[4] = {0, 0, 0, 0}, xgmi = -1;
    const scomm_topo_vendor_t *v;

    for (i = 0; i < host->naccel; i++) {
        switch (host->accel[i].vendor_id) {
        case 0x19e5: count[0]++; break;
        case 0xcabc: count[1]++; break;
        case 0x1d22: count[2]++; break;
        default: break;
        }
    }
    for (i = 0; i < host->naccel; i++) {
        scomm_topo_accel_t *a = &host->accel[i];
        int on = 0;

        v = scomm_topo_vendor(a->vendor_id);
        switch (a->vendor_id) {
        case 0x10de:
            on = (host->nvswitches > 0) || (a->fabric_links > 0);
            break;
        case 0x1002:
        case 0x1d94:
            if (xgmi < 0) {
                xgmi = scomm_kfd_has_xgmi(fs);
            }
            on = xgmi;
            break;
        case 0x19e5:
            on = (count[0] >= 2) && ((a->device_id == 0xd801) ||
                                     (a->device_id == 0xd802) ||
                                     (a->device_id == 0xd803));
            break;
        case 0xcabc:
            on = (count[1] >= 2) && ((a->device_id == 0x0290) ||
                                     (a->device_id == 0x0370) ||
                                     (a->device_id == 0x0590));
            break;
        case 0x1d22:
            on = (count[2] >= 8);
            break;
        default:
            break;
        }
        if (on && (v != NULL) && (v->fabric != SCOMM_LINK_PCIE)) {
            a->fabric      = v->fabric;
            a->fabric_gbps = v->fabric_gbps;
            if ((a->vendor_id == 0x19e5) && (host->ub_devices > 0)) {
                a->fabric      = SCOMM_LINK_UB;
                a->fabric_gbps = scomm_topo_link_info(SCOMM_LINK_UB)->gbps;
            }
            if ((a->vendor_id == 0x10de) && (a->fabric_links > 0)) {
                a->fabric_gbps = 25.0 * a->fabric_links;
            }
        } else {
            a->fabric      = SCOMM_LINK_PCIE;
            a->fabric_gbps = (a->pcie_gbps > 0.0) ? a->pcie_gbps
                             : scomm_topo_link_info(SCOMM_LINK_PCIE)->gbps;
        }
    }
}

/* "200 Gb/sec (4X HDR)" -> 25 GB/s */
static double scomm_ib_rate_gbps(const char *rate)
{
    double gbit = strtod(rate, NULL);

    return (gbit > 0.0) ? gbit / 8.0 : 0.0;
}

static void scomm_scan_rdma(const scomm_sysfs_t *fs, scomm_topo_host_t *host)
{
    char **devs, **ports, **nets, p[256], buf[64];
    int nd, np, nn, i;

    devs = scomm_dir_list(fs, "/sys/class/infiniband", &nd);
    for (i = 0; (i < nd) && (host->nnic < SCOMM_TOPO_MAX_NIC); i++) {
        scomm_topo_nic_t *nic = &host->nic[host->nnic];

        memset(nic, 0, sizeof(*nic));
        snprintf(nic->name, sizeof(nic->name), "%s", devs[i]);
        snprintf(p, sizeof(p), "/sys/class/infiniband/%s/ports", devs[i]);
        ports = scomm_dir_list(fs, p, &np);
        if (np == 0) {
            scomm_dir_free(ports, np);
            continue;
        }
        snprintf(p, sizeof(p), "/sys/class/infiniband/%s/ports/%s/"
                 "link_layer", devs[i], ports[0]);
        scomm_sysfs_read(fs, p, buf, sizeof(buf));
        nic->kind = (strcasecmp(buf, "Ethernet") == 0) ? SCOMM_LINK_ROCE
                                                       : SCOMM_LINK_INFINIBAND;
        snprintf(p, sizeof(p), "/sys/class/infiniband/%s/ports/%s/rate",
                 devs[i], ports[0]);
        scomm_sysfs_read(fs, p, buf, sizeof(buf));
        nic->gbps = scomm_ib_rate_gbps(buf);
        snprintf(p, sizeof(p), "/sys/class/infiniband/%s/ports/%s/state",
                 devs[i], ports[0]);
        scomm_sysfs_read(fs, p, buf, sizeof(buf));
        nic->up = (strstr(buf, "ACTIVE") != NULL);
        scomm_dir_free(ports, np);
        snprintf(p, sizeof(p), "/sys/class/infiniband/%s/device", devs[i]);
        scomm_sysfs_pci_path(fs, p, nic->pci_path, sizeof(nic->pci_path),
                             nic->pci, sizeof(nic->pci));
        nic->numa = (nic->pci[0] != '\0') ? scomm_sysfs_numa(fs, nic->pci)
                                          : -1;
        snprintf(p, sizeof(p), "/sys/class/infiniband/%s/device/net",
                 devs[i]);
        nets = scomm_dir_list(fs, p, &nn);
        if (nn > 0) {
            snprintf(nic->netdev, sizeof(nic->netdev), "%s", nets[0]);
        }
        scomm_dir_free(nets, nn);
        host->nnic++;
    }
    scomm_dir_free(devs, nd);
}

static void scomm_scan_net(const scomm_sysfs_t *fs, scomm_topo_host_t *host)
{
    char **devs, p[256], buf[64], path[SCOMM_TOPO_PATH_MAX], bdf[16];
    char full[PATH_MAX];
    int nd, i, j, nrdma = host->nnic, dup;
    long speed;

    devs = scomm_dir_list(fs, "/sys/class/net", &nd);
    for (i = 0; (i < nd) && (host->nnic < SCOMM_TOPO_MAX_NIC); i++) {
        scomm_topo_nic_t *nic = &host->nic[host->nnic];

        /* virtual interfaces (lo, bridges, veth, ifb) have no device */
        snprintf(p, sizeof(p), "/sys/class/net/%s/device", devs[i]);
        scomm_sysfs_path(fs, full, sizeof(full), p);
        if (access(full, F_OK) != 0) {
            continue;
        }
        scomm_sysfs_pci_path(fs, p, path, sizeof(path), bdf, sizeof(bdf));
        dup = 0;
        for (j = 0; j < nrdma; j++) {
            if ((strcmp(host->nic[j].netdev, devs[i]) == 0) ||
                ((bdf[0] != '\0') && (strcmp(host->nic[j].pci, bdf) == 0) &&
                 (host->nic[j].netdev[0] == '\0'))) {
                dup = 1; /* the netdev of an RDMA port (RoCE, IPoIB) */
                if (host->nic[j].netdev[0] == '\0') {
                    snprintf(host->nic[j].netdev, sizeof(host->nic[j].netdev),
                             "%s", devs[i]);
                }
            }
        }
        if (dup) {
            continue;
        }
        memset(nic, 0, sizeof(*nic));
        snprintf(nic->name, sizeof(nic->name), "%s", devs[i]);
        snprintf(nic->netdev, sizeof(nic->netdev), "%s", devs[i]);
        snprintf(nic->pci, sizeof(nic->pci), "%s", bdf);
        snprintf(nic->pci_path, sizeof(nic->pci_path), "%s", path);
        nic->kind = SCOMM_LINK_TCP;
        snprintf(p, sizeof(p), "/sys/class/net/%s/speed", devs[i]);
        speed     = scomm_sysfs_long(fs, p, -1);
        nic->gbps = (speed > 0) ? (double)speed / 8000.0 : 0.0;
        snprintf(p, sizeof(p), "/sys/class/net/%s/operstate", devs[i]);
        scomm_sysfs_read(fs, p, buf, sizeof(buf));
        nic->up   = (strcmp(buf, "up") == 0);
        nic->numa = (bdf[0] != '\0') ? scomm_sysfs_numa(fs, bdf) : -1;
        host->nnic++;
    }
    scomm_dir_free(devs, nd);
}

static uint64_t scomm_sysfs_u64(const scomm_sysfs_t *fs, const char *path)
{
    char buf[64];

    if (scomm_sysfs_read(fs, path, buf, sizeof(buf)) != 0) {
        return 0;
    }
    return strtoull(buf, NULL, 0);
}

static void scomm_scan_cxl(const scomm_sysfs_t *fs, scomm_topo_host_t *host)
{
    char **devs, p[256], path[SCOMM_TOPO_PATH_MAX];
    int nd, i;

    devs = scomm_dir_list(fs, "/sys/bus/cxl/devices", &nd);
    for (i = 0; (i < nd) && (host->ncxl < SCOMM_TOPO_MAX_CXL); i++) {
        scomm_topo_cxl_t *c = &host->cxl[host->ncxl];

        if (strncmp(devs[i], "mem", 3) != 0) {
            continue; /* ports, decoders, regions */
        }
        memset(c, 0, sizeof(*c));
        snprintf(c->name, sizeof(c->name), "%s", devs[i]);
        snprintf(p, sizeof(p), "/sys/bus/cxl/devices/%s", devs[i]);
        scomm_sysfs_pci_path(fs, p, path, sizeof(path), c->pci,
                             sizeof(c->pci));
        snprintf(p, sizeof(p), "/sys/bus/cxl/devices/%s/ram/size", devs[i]);
        c->ram_bytes = scomm_sysfs_u64(fs, p);
        snprintf(p, sizeof(p), "/sys/bus/cxl/devices/%s/pmem/size", devs[i]);
        c->pmem_bytes = scomm_sysfs_u64(fs, p);
        snprintf(p, sizeof(p), "/sys/bus/cxl/devices/%s/numa_node", devs[i]);
        c->numa = (int)scomm_sysfs_long(fs, p, -1);
        if ((c->numa < 0) && (c->pci[0] != '\0')) {
            c->numa = scomm_sysfs_numa(fs, c->pci);
        }
        host->ncxl++;
    }
    scomm_dir_free(devs, nd);
}

static void scomm_scan_host_id(const scomm_sysfs_t *fs,
                               scomm_topo_host_t *host)
{
    char buf[128];

    if ((fs->root[0] != '\0') &&
        (scomm_sysfs_read(fs, "/proc/sys/kernel/hostname", buf,
                          sizeof(buf)) == 0)) {
        snprintf(host->hostname, sizeof(host->hostname), "%.63s", buf);
    } else if (gethostname(host->hostname, sizeof(host->hostname)) != 0) {
        snprintf(host->hostname, sizeof(host->hostname), "localhost");
    }
    host->hostname[sizeof(host->hostname) - 1] = '\0';
    if (scomm_sysfs_read(fs, "/proc/sys/kernel/random/boot_id", buf,
                         sizeof(buf)) == 0) {
        snprintf(host->boot_id, sizeof(host->boot_id), "%.39s", buf);
    }
}

/* ---- CPUs, caches and NUMA nodes from sysfs ---- */

/* "0-3,8,10-11" into set (CPUs past CPU_SETSIZE are left out); -1 when
 * the text is no CPU list. "" is the empty set. */
static int scomm_cpulist_parse(const char *s, cpu_set_t *set)
{
    char *end;
    long a, b;

    CPU_ZERO(set);
    while (*s != '\0') {
        errno = 0;
        a     = strtol(s, &end, 10);
        if ((end == s) || (a < 0) || (errno != 0)) {
            return -1;
        }
        b = a;
        s = end;
        if (*s == '-') {
            b = strtol(++s, &end, 10);
            if ((end == s) || (b < a) || (errno != 0)) {
                return -1;
            }
            s = end;
        }
        for (; (a <= b) && (a < CPU_SETSIZE); a++) {
            CPU_SET((int)a, set);
        }
        if (*s == ',') {
            s++;
        } else if (*s != '\0') {
            return -1;
        }
    }
    return 0;
}

static int scomm_cpulist_read(const scomm_sysfs_t *fs, const char *path,
                              cpu_set_t *set)
{
    char buf[4096];

    CPU_ZERO(set);
    return (scomm_sysfs_read(fs, path, buf, sizeof(buf)) == 0)
               ? scomm_cpulist_parse(buf, set) : -1;
}

static int scomm_cpuset_first(const cpu_set_t *set)
{
    int c;

    for (c = 0; c < CPU_SETSIZE; c++) {
        if (CPU_ISSET(c, set)) {
            return c;
        }
    }
    return -1;
}

/* Online CPUs the process's cgroup (v2 cpuset.cpus.effective, or v1
 * cpuset.effective_cpus) allows, as hwloc counts them. A fixture root has
 * no cgroup of ours: all its online CPUs. */
static void scomm_sysfs_allowed(const scomm_sysfs_t *fs, cpu_set_t *set)
{
    char line[512], p[PATH_MAX], *ctl, *path;
    cpu_set_t cg;
    FILE *f;
    size_t n;

    scomm_cpulist_read(fs, "/sys/devices/system/cpu/online", set);
    if ((fs->root[0] != '\0') ||
        ((f = fopen("/proc/self/cgroup", "r")) == NULL)) {
        return;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        n = strlen(line);
        if ((n > 0) && (line[n - 1] == '\n')) {
            line[n - 1] = '\0';
        }
        ctl  = strchr(line, ':');
        path = (ctl != NULL) ? strchr(ctl + 1, ':') : NULL;
        if (path == NULL) {
            continue;
        }
        *path++ = '\0';
        ctl++;
        if (ctl[0] == '\0') {
            snprintf(p, sizeof(p), "/sys/fs/cgroup%s/cpuset.cpus.effective",
                     path);
        } else if ((strcmp(ctl, "cpuset") == 0) ||
                   (strstr(ctl, "cpuset,") == ctl) ||
                   (strstr(ctl, ",cpuset") != NULL)) {
            snprintf(p, sizeof(p),
                     "/sys/fs/cgroup/cpuset%s/cpuset.effective_cpus", path);
        } else {
            continue;
        }
        if ((scomm_cpulist_read(fs, p, &cg) == 0) && (CPU_COUNT(&cg) > 0)) {
            CPU_AND(set, set, &cg);
            break;
        }
    }
    fclose(f);
}

/* "48K" -> 49152 */
static uint64_t scomm_sysfs_size(const scomm_sysfs_t *fs, const char *path)
{
    char buf[64], *end;
    uint64_t v;

    if (scomm_sysfs_read(fs, path, buf, sizeof(buf)) != 0) {
        return 0;
    }
    v = strtoull(buf, &end, 10);
    switch (*end) {
    case 'K': return v << 10;
    case 'M': return v << 20;
    case 'G': return v << 30;
    default: return v;
    }
}

/* MemTotal of a meminfo file ("MemTotal:" or "Node N MemTotal:"), bytes. */
static uint64_t scomm_sysfs_memtotal(const scomm_sysfs_t *fs,
                                     const char *path)
{
    char full[PATH_MAX], line[256], *m;
    uint64_t kb = 0;
    FILE *f;

    scomm_sysfs_path(fs, full, sizeof(full), path);
    f = fopen(full, "r");
    if (f == NULL) {
        return 0;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        m = strstr(line, "MemTotal:");
        if (m != NULL) {
            kb = strtoull(m + strlen("MemTotal:"), NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb << 10;
}

/* Numbers of the /sys/devices/system/node/nodeN directories, ascending
 * by name; returns how many (at most max). */
static int scomm_sysfs_nodes(const scomm_sysfs_t *fs, int *ids, int max)
{
    char **ents, *end;
    int n, i, k = 0;
    long id;

    ents = scomm_dir_list(fs, "/sys/devices/system/node", &n);
    for (i = 0; (i < n) && (k < max); i++) {
        if (strncmp(ents[i], "node", 4) != 0) {
            continue;
        }
        id = strtol(ents[i] + 4, &end, 10);
        if ((end != ents[i] + 4) && (*end == '\0') && (id >= 0) &&
            (id < INT_MAX)) {
            ids[k++] = (int)id;
        }
    }
    scomm_dir_free(ents, n);
    return k;
}

#define SCOMM_SYSFS_NODES_MAX 1024

int scomm_topo_sysfs_cpus(scomm_topo_host_t *host, const char *sysfs_root)
{
    /* cache kinds: 0 l1d, 1 l1i, 2 l2, 3 l3 */
    scomm_topo_cache_t *cache[4] = {&host->l1d, &host->l1i, &host->l2,
                                    &host->l3};
    static const char *const base = "/sys/devices/system/cpu";
    cpu_set_t allowed, pkgs, cores, seen[4], list;
    scomm_sysfs_t fs;
    char p[256], type[32];
    int cpu, idx, level, k, first, n, i, nodes[SCOMM_SYSFS_NODES_MAX];
    long pkg;

    fs.root = ((sysfs_root != NULL) && (strcmp(sysfs_root, "/") != 0))
                  ? sysfs_root : "";
    scomm_sysfs_allowed(&fs, &allowed);
    CPU_ZERO(&pkgs);
    CPU_ZERO(&cores);
    for (k = 0; k < 4; k++) {
        CPU_ZERO(&seen[k]);
        memset(cache[k], 0, sizeof(*cache[k]));
    }
    for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed)) {
            continue;
        }
        snprintf(p, sizeof(p), "%s/cpu%d/topology/physical_package_id", base,
                 cpu);
        pkg = scomm_sysfs_long(&fs, p, 0);
        CPU_SET(((pkg >= 0) && (pkg < CPU_SETSIZE)) ? (int)pkg : 0, &pkgs);
        snprintf(p, sizeof(p), "%s/cpu%d/topology/core_cpus_list", base, cpu);
        if (scomm_cpulist_read(&fs, p, &list) != 0) {
            snprintf(p, sizeof(p), "%s/cpu%d/topology/thread_siblings_list",
                     base, cpu);
            scomm_cpulist_read(&fs, p, &list);
        }
        first = scomm_cpuset_first(&list);
        CPU_SET((first >= 0) ? first : cpu, &cores);
        for (idx = 0; idx < 16; idx++) {
            snprintf(p, sizeof(p), "%s/cpu%d/cache/index%d/level", base, cpu,
                     idx);
            level = (int)scomm_sysfs_long(&fs, p, -1);
            if (level < 0) {
                break;
            }
            snprintf(p, sizeof(p), "%s/cpu%d/cache/index%d/type", base, cpu,
                     idx);
            scomm_sysfs_read(&fs, p, type, sizeof(type));
            k = (strcmp(type, "Instruction") == 0) ? ((level == 1) ? 1 : -1)
                : ((level >= 1) && (level <= 3))   ? ((level == 1) ? 0
                                                                  : level)
                                                   : -1;
            if (k < 0) {
                continue;
            }
            snprintf(p, sizeof(p), "%s/cpu%d/cache/index%d/shared_cpu_list",
                     base, cpu, idx);
            first = (scomm_cpulist_read(&fs, p, &list) == 0)
                        ? scomm_cpuset_first(&list) : -1;
            first = (first >= 0) ? first : cpu;
            if (CPU_ISSET(first, &seen[k])) {
                continue;
            }
            CPU_SET(first, &seen[k]);
            if (cache[k]->count++ == 0) {
                snprintf(p, sizeof(p), "%s/cpu%d/cache/index%d/size", base,
                         cpu, idx);
                cache[k]->size = scomm_sysfs_size(&fs, p);
            }
        }
    }
    host->pus      = CPU_COUNT(&allowed);
    host->cores    = CPU_COUNT(&cores);
    host->packages = (host->pus > 0) ? CPU_COUNT(&pkgs) : 0;
    n              = scomm_sysfs_nodes(&fs, nodes, SCOMM_SYSFS_NODES_MAX);
    host->memory   = 0;
    for (i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "/sys/devices/system/node/node%d/meminfo",
                 nodes[i]);
        host->memory += scomm_sysfs_memtotal(&fs, p);
    }
    if (host->memory == 0) {
        host->memory = scomm_sysfs_memtotal(&fs, "/proc/meminfo");
    }
    /* hwloc always shows one node, even where the kernel has no NUMA */
    host->numa_nodes = ((n == 0) && (host->pus > 0)) ? 1 : n;
    return SCOMM_OK;
}

int scomm_topo_sysfs_bind_numa(const char *sysfs_root, const cpu_set_t *bind)
{
    int nodes[SCOMM_SYSFS_NODES_MAX], n, i, hit = -1, nhit = 0;
    cpu_set_t set;
    scomm_sysfs_t fs;
    char p[128];

    fs.root = ((sysfs_root != NULL) && (strcmp(sysfs_root, "/") != 0))
                  ? sysfs_root : "";
    n = scomm_sysfs_nodes(&fs, nodes, SCOMM_SYSFS_NODES_MAX);
    for (i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "/sys/devices/system/node/node%d/cpulist",
                 nodes[i]);
        if (scomm_cpulist_read(&fs, p, &set) != 0) {
            continue;
        }
        CPU_AND(&set, &set, bind);
        if (CPU_COUNT(&set) > 0) {
            hit = nodes[i];
            nhit++;
        }
    }
    if (nhit == 1) {
        return hit;
    }
    return (n <= 1) ? 0 : -1;
}

#ifdef SCOMM_HAVE_HWLOC
/* ---- hwloc ---- */

static void scomm_hwloc_cache(hwloc_topology_t t, hwloc_obj_type_t type,
                              scomm_topo_cache_t *c)
{
    hwloc_obj_t o;

    c->count = hwloc_get_nbobjs_by_type(t, type);
    if (c->count < 0) {
        c->count = 0;
    }
    o       = hwloc_get_obj_by_type(t, type, 0);
    c->size = ((o != NULL) && (o->attr != NULL)) ? o->attr->cache.size : 0;
}

static int scomm_hwloc_scan(scomm_topo_host_t *host, const char *xml,
                            char *err, size_t errlen)
{
    hwloc_topology_t t;
    hwloc_obj_t o;
    int n;

    if (hwloc_topology_init(&t) != 0) {
        snprintf(err, errlen, "hwloc_topology_init: %s", strerror(errno));
        return SCOMM_ERR_SYSTEM;
    }
    if ((xml != NULL) && (hwloc_topology_set_xml(t, xml) != 0)) {
        snprintf(err, errlen, "SCOMM_TOPO_FILE %s: hwloc cannot read it "
                 "as XML: %s", xml, strerror(errno));
        hwloc_topology_destroy(t);
        return SCOMM_ERR_BAD_CONFIG;
    }
    if (xml == NULL) {
        /* PCI devices come from sysfs (scomm_scan_pci, which honours
         * SCOMM_SYSFS_ROOT); hwloc's libpciaccess plugin would only scan
         * them again, slower, and it leaks a few allocations per load that
         * LeakSanitizer cannot attribute (its module is dlclosed). */
        (void)hwloc_topology_set_components(
            t, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "pci");
    }
    hwloc_topology_set_io_types_filter(t, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    hwloc_topology_set_icache_types_filter(t, HWLOC_TYPE_FILTER_KEEP_ALL);
    if (hwloc_topology_load(t) != 0) {
        snprintf(err, errlen, "hwloc_topology_load%s%s: %s",
                 (xml != NULL) ? " " : "", (xml != NULL) ? xml : "",
                 strerror(errno));
        hwloc_topology_destroy(t);
        return (xml != NULL) ? SCOMM_ERR_BAD_CONFIG : SCOMM_ERR_SYSTEM;
    }
    host->packages   = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PACKAGE);
    host->numa_nodes = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
    host->cores      = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    host->pus        = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PU);
    scomm_hwloc_cache(t, HWLOC_OBJ_L1CACHE, &host->l1d);
    scomm_hwloc_cache(t, HWLOC_OBJ_L1ICACHE, &host->l1i);
    scomm_hwloc_cache(t, HWLOC_OBJ_L2CACHE, &host->l2);
    scomm_hwloc_cache(t, HWLOC_OBJ_L3CACHE, &host->l3);
    o            = hwloc_get_root_obj(t);
    host->memory = (o != NULL) ? o->total_memory : 0;
    n            = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_PCI_DEVICE);
    host->pci_devices = (n > 0) ? n : 0;
    hwloc_topology_destroy(t);
    return SCOMM_OK;
}

int scomm_topo_cpubind_numa(void)
{
    hwloc_topology_t t;
    hwloc_cpuset_t set;
    hwloc_nodeset_t nodes;
    int numa = -1, nn;

    if (hwloc_topology_init(&t) != 0) {
        return -1;
    }
    /* CPUs and NUMA nodes only: no PCI scan (see scomm_hwloc_scan). */
    (void)hwloc_topology_set_components(
        t, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "pci");
    if (hwloc_topology_load(t) != 0) {
        hwloc_topology_destroy(t);
        return -1;
    }
    nn    = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
    set   = hwloc_bitmap_alloc();
    nodes = hwloc_bitmap_alloc();
    if ((set != NULL) && (nodes != NULL) &&
        (hwloc_get_cpubind(t, set, HWLOC_CPUBIND_THREAD) == 0)) {
        hwloc_cpuset_to_nodeset(t, set, nodes);
        if (hwloc_bitmap_weight(nodes) == 1) {
            /* OS index, as sysfs numa_node files give it */
            numa = hwloc_bitmap_first(nodes);
        }
    }
    if ((numa < 0) && (nn == 1)) {
        numa = 0;
    }
    hwloc_bitmap_free(set);
    hwloc_bitmap_free(nodes);
    hwloc_topology_destroy(t);
    return numa;
}
#else /* !SCOMM_HAVE_HWLOC */
static int scomm_sysfs_scan(scomm_topo_host_t *host, const char *xml,
                            const scomm_sysfs_t *fs, char *err,
                            size_t errlen)
{
    if (xml != NULL) {
        return scomm_feature_missing(SCOMM_FEATURE_HWLOC, err, errlen,
                                     "SCOMM_TOPO_FILE %s: an hwloc XML "
                                     "topology", xml);
    }
    return scomm_topo_sysfs_cpus(host, fs->root);
}

int scomm_topo_cpubind_numa(void)
{
    cpu_set_t bind;

    if (sched_getaffinity(0, sizeof(bind), &bind) != 0) {
        return -1;
    }
    return scomm_topo_sysfs_bind_numa(NULL, &bind);
}
#endif /* SCOMM_HAVE_HWLOC */

/* A device with no NUMA affinity on a one-node machine sits on node 0. */
static void scomm_fix_numa(scomm_topo_host_t *host)
{
    int i;

    if (host->numa_nodes != 1) {
        return;
    }
    for (i = 0; i < host->naccel; i++) {
        host->accel[i].numa = SCOMM_MAX(host->accel[i].numa, 0);
    }
    for (i = 0; i < host->nnic; i++) {
        host->nic[i].numa = SCOMM_MAX(host->nic[i].numa, 0);
    }
    for (i = 0; i < host->ncxl; i++) {
        host->cxl[i].numa = SCOMM_MAX(host->cxl[i].numa, 0);
    }
}

static int scomm_has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);

    return (n >= m) && (strcasecmp(s + n - m, suf) == 0);
}

static int scomm_topo_load_json(const char *path, scomm_topo_host_t *host,
                                char *err, size_t errlen)
{
    char *text;
    size_t n;
    FILE *f;
    int status;

    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "SCOMM_TOPO_FILE %s: %s", path,
                 strerror(errno));
        return SCOMM_ERR_BAD_CONFIG;
    }
    text = malloc((4u << 20) + 1);
    if (text == NULL) {
        fclose(f);
        snprintf(err, errlen, "SCOMM_TOPO_FILE %s: out of memory", path);
        return SCOMM_ERR_NO_MEMORY;
    }
    n = fread(text, 1, 4u << 20, f);
    fclose(f);
    status = scomm_topo_host_from_json(text, n, path, host, err, errlen);
    free(text);
    return status;
}

static int scomm_topo_dump(const scomm_topo_host_t *host, const char *path,
                           char *err, size_t errlen)
{
    char *text = scomm_topo_json_text(host, NULL, 0, NULL, 0, NULL, 2);
    FILE *f;
    int ok;

    if (text == NULL) {
        snprintf(err, errlen, "SCOMM_TOPO_DUMP_FILE: out of memory");
        return SCOMM_ERR_NO_MEMORY;
    }
    f = fopen(path, "w");
    if (f == NULL) {
        snprintf(err, errlen, "SCOMM_TOPO_DUMP_FILE %s: %s", path,
                 strerror(errno));
        free(text);
        return SCOMM_ERR_SYSTEM;
    }
    ok = (fputs(text, f) >= 0) && (fputc('\n', f) != EOF);
    ok = (fclose(f) == 0) && ok;
    free(text);
    if (!ok) {
        snprintf(err, errlen, "SCOMM_TOPO_DUMP_FILE %s: write failed", path);
        return SCOMM_ERR_SYSTEM;
    }
    return SCOMM_OK;
}

int scomm_topo_discover(scomm_topo_host_t *host, const char *topo_file,
                        const char *sysfs_root, char *err, size_t errlen)
{
    scomm_pval_t tf, sr, dump;
    scomm_sysfs_t fs;
    int status;

    memset(host, 0, sizeof(*host));
    if (((status = scomm_param_get("SCOMM_TOPO_FILE", NULL, &tf, err,
                                   errlen)) != SCOMM_OK) ||
        ((status = scomm_param_get("SCOMM_SYSFS_ROOT", NULL, &sr, err,
                                   errlen)) != SCOMM_OK) ||
        ((status = scomm_param_get("SCOMM_TOPO_DUMP_FILE", NULL, &dump, err,
                                   errlen)) != SCOMM_OK)) {
        return status;
    }
    if (topo_file == NULL) {
        topo_file = tf.text;
    }
    if (sysfs_root == NULL) {
        sysfs_root = sr.text;
    }
    if ((topo_file != NULL) && (topo_file[0] == '\0')) {
        topo_file = NULL;
    }
    fs.root = ((sysfs_root != NULL) && (strcmp(sysfs_root, "/") != 0))
                  ? sysfs_root : "";
    if ((topo_file != NULL) && scomm_has_suffix(topo_file, ".json")) {
        status = scomm_topo_load_json(topo_file, host, err, errlen);
        if (status != SCOMM_OK) {
            return status;
        }
        snprintf(host->source, sizeof(host->source), "json:%s", topo_file);
    } else {
#ifdef SCOMM_HAVE_HWLOC
        status = scomm_hwloc_scan(host, topo_file, err, errlen);
#else
        status = scomm_sysfs_scan(host, topo_file, &fs, err, errlen);
#endif
        if (status != SCOMM_OK) {
            return status;
        }
        snprintf(host->source, sizeof(host->source), "%s%s",
                 (topo_file != NULL) ? "hwloc-xml:"
                 : scomm_feature_have(SCOMM_FEATURE_HWLOC) ? "hwloc"
                                                           : "sysfs",
                 (topo_file != NULL) ? topo_file : "");
        snprintf(host->sysfs_root, sizeof(host->sysfs_root), "%s",
                 (fs.root[0] != '\0') ? fs.root : "/");
        scomm_scan_host_id(&fs, host);
        host->ub_devices = 0;
        {
            char **ub;
            int nub;

            ub = scomm_dir_list(&fs, "/sys/bus/ub/devices", &nub);
            host->ub_devices = nub;
            scomm_dir_free(ub, nub);
        }
        scomm_scan_pci(&fs, host);
        if (topo_file == NULL) {
            char **pci;
            int npci;

            pci = scomm_dir_list(&fs, "/sys/bus/pci/devices", &npci);
            host->pci_devices = npci;
            scomm_dir_free(pci, npci);
        }
        if (fs.root[0] == '\0') {
            host->nvml = scomm_nvml_links(host);
        }
        scomm_accel_fabrics(&fs, host);
        scomm_scan_rdma(&fs, host);
        scomm_scan_net(&fs, host);
        scomm_scan_cxl(&fs, host);
        scomm_fix_numa(host);
    }
    scomm_debug(SCOMM_SUB_TOPO, "topology of %s from %s: %d cores, %d numa, "
                "%d accelerators, %d nics", host->hostname, host->source,
                host->cores, host->numa_nodes, host->naccel, host->nnic);
    if (dump.text[0] != '\0') {
        status = scomm_topo_dump(host, dump.text, err, errlen);
        if (status != SCOMM_OK) {
            return status;
        }
    }
    return SCOMM_OK;
}
