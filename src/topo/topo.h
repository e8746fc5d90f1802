/*
 * topo.h - internal topology model: one host's hardware (discover.c), the
 * per-rank summaries gathered across a communicator, the rank-by-rank link
 * matrix and the preset recommendation (matrix.c), JSON in and out
 * (topo_json.c) and the transport profiles (profile.c).
 *
 * Units: bandwidth in GB/s (10^9 bytes per second, one direction), latency
 * in microseconds, sizes in bytes.
 */
#ifndef SCOMM_TOPO_TOPO_H
#define SCOMM_TOPO_TOPO_H

#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "preset.h"

#define SCOMM_TOPO_MAX_ACCEL  64
#define SCOMM_TOPO_MAX_NIC    32
#define SCOMM_TOPO_MAX_CXL    16
#define SCOMM_TOPO_NAME_MAX   32
#define SCOMM_TOPO_PATH_MAX   160
#define SCOMM_TOPO_HOST_MAX   64
#define SCOMM_TOPO_SOURCE_MAX 192
#define SCOMM_TOPO_REASON_MAX 8

/* Link kinds of the matrix; the names are the JSON's (topo_link_name). */
typedef enum {
    SCOMM_LINK_SELF = 0,
    SCOMM_LINK_SHM_SAME_NUMA,
    SCOMM_LINK_SHM_CROSS_NUMA,
    SCOMM_LINK_NVLINK,
    SCOMM_LINK_PCIE,
    SCOMM_LINK_HCCS,
    SCOMM_LINK_XGMI,
    SCOMM_LINK_MLULINK,
    SCOMM_LINK_XPULINK,
    SCOMM_LINK_UB,
    SCOMM_LINK_INFINIBAND,
    SCOMM_LINK_ROCE,
    SCOMM_LINK_TCP,
    SCOMM_LINK_COUNT
} scomm_link_kind_t;

/* Defaults per kind: bandwidth (GB/s), latency (us), hops, and the seed's
 * LinkKind word (nvlink/pcie/infiniband/roce/hccs/network). */
typedef struct scomm_link_info {
    const char *name;
    const char *seed_kind;
    double      gbps;
    double      lat_us;
    int         hops;
} scomm_link_info_t;

const scomm_link_info_t *scomm_topo_link_info(scomm_link_kind_t kind);
const char *scomm_topo_link_name(scomm_link_kind_t kind);
int scomm_topo_link_parse(const char *name); /* -1 if unknown */

typedef struct scomm_topo_accel {
    char     vendor[16];     /* "nvidia", "huawei", ... */
    char     type[8];        /* DeviceId type: cuda, rocm, npu, mlu, dcu, xpu */
    char     model[32];      /* "Ascend 910B" or "0x20b0" */
    uint16_t vendor_id;
    uint16_t device_id;
    char     pci[16];        /* 0000:17:00.0 */
    char     pci_path[SCOMM_TOPO_PATH_MAX]; /* BDFs from the root port */
    int      numa;           /* -1 unknown */
    int      fabric;         /* scomm_link_kind_t: nvlink, hccs, ... or pcie */
    int      fabric_links;   /* links of that fabric, 0 unknown */
    double   fabric_gbps;    /* to a peer over the fabric */
    double   pcie_gbps;      /* this device's PCIe link */
} scomm_topo_accel_t;

typedef struct scomm_topo_nic {
    char   name[SCOMM_TOPO_NAME_MAX];   /* ib device, else netdev */
    char   netdev[SCOMM_TOPO_NAME_MAX]; /* "" for IB without IPoIB */
    int    kind;             /* SCOMM_LINK_INFINIBAND, _ROCE or _TCP */
    char   pci[16];
    char   pci_path[SCOMM_TOPO_PATH_MAX];
    int    numa;
    double gbps;             /* link rate in GB/s; 0 unknown */
    int    up;               /* link up / port ACTIVE */
} scomm_topo_nic_t;

typedef struct scomm_topo_cxl {
    char     name[SCOMM_TOPO_NAME_MAX]; /* mem0 */
    char     pci[16];
    uint64_t ram_bytes;
    uint64_t pmem_bytes;
    int      numa;
} scomm_topo_cxl_t;

typedef struct scomm_topo_cache {
    uint64_t size;           /* bytes of one instance; 0 when absent */
    int      count;
} scomm_topo_cache_t;

/* One host. Plain data: copied and serialised as it is. */
typedef struct scomm_topo_host {
    char               hostname[SCOMM_TOPO_HOST_MAX];
    char               boot_id[40];
    char               source[SCOMM_TOPO_SOURCE_MAX]; /* "hwloc", ... */
    char               sysfs_root[SCOMM_TOPO_SOURCE_MAX];
    int                packages;
    int                numa_nodes;
    int                cores;
    int                pus;
    uint64_t           memory;
    scomm_topo_cache_t l1d, l1i, l2, l3;
    int                pci_devices; /* as hwloc sees them */
    int                naccel;
    scomm_topo_accel_t accel[SCOMM_TOPO_MAX_ACCEL];
    int                nnic;
    scomm_topo_nic_t   nic[SCOMM_TOPO_MAX_NIC];
    int                ncxl;
    scomm_topo_cxl_t   cxl[SCOMM_TOPO_MAX_CXL];
    int                nvswitches;  /* NVSwitch PCI functions */
    int                ub_devices;  /* /sys/bus/ub devices (UnifiedBus) */
    int                nvml;        /* NVML answered */
} scomm_topo_host_t;

/* What one rank tells the others (all_gather'ed as bytes). */
typedef struct scomm_topo_rank {
    char    hostname[SCOMM_TOPO_HOST_MAX];
    char    boot_id[40];
    int32_t rank;
    int32_t local_rank;
    int32_t local_size;
    int32_t host_id;         /* filled by the matrix builder */
    int32_t numa;            /* -1 unknown / not bound */
    int32_t accel;           /* index in its host's table, -1 none */
    char    accel_id[SCOMM_TOPO_NAME_MAX]; /* DeviceId "nodeH:type:i" tail */
    char    accel_pci[16];
    int32_t fabric;          /* link kind of the accelerator's fabric */
    float   fabric_gbps;
    float   pcie_gbps;
    int32_t nic;             /* nearest NIC, -1 none */
    char    nic_name[SCOMM_TOPO_NAME_MAX];
    int32_t nic_kind;
    float   nic_gbps;
    int32_t nic_distance;    /* 1 same switch, 2 same NUMA, 3 other */
} scomm_topo_rank_t;

typedef struct scomm_topo_link {
    int32_t kind;            /* scomm_link_kind_t */
    float   gbps;
    float   lat_us;
    int32_t hops;
} scomm_topo_link_t;

typedef struct scomm_topo_reco {
    char preset[SCOMM_PRESET_NAME_MAX];
    int  nreasons;
    char reasons[SCOMM_TOPO_REASON_MAX][160];
} scomm_topo_reco_t;

/* ---- discover.c ---- */
/* Discover this host: hwloc (or SCOMM_TOPO_FILE: hwloc XML or our JSON)
 * for CPUs and caches, sysfs (SCOMM_SYSFS_ROOT, default /) for devices.
 * topo_file / sysfs_root NULL mean: read the environment. Writes
 * SCOMM_TOPO_DUMP_FILE when set. err gets "what: why" on failure. */
int scomm_topo_discover(scomm_topo_host_t *host, const char *topo_file,
                        const char *sysfs_root, char *err, size_t errlen);
/* The accelerator vendor table: name, DeviceId type, link kind of its
 * fabric, default fabric GB/s. NULL when the id is no accelerator. */
typedef struct scomm_topo_vendor {
    uint16_t    vendor_id;
    const char *vendor;
    const char *type;
    int         fabric;
    double      fabric_gbps;
    const char *fabric_evidence;
} scomm_topo_vendor_t;
const scomm_topo_vendor_t *scomm_topo_vendor(uint16_t vendor_id);
const scomm_topo_vendor_t *scomm_topo_vendors(int *n);
/* NUMA node the calling thread is bound to, -1 when unbound or unknown
 * (hwloc, else sysfs). */
int scomm_topo_cpubind_numa(void);
/* The CPU side of host (packages, NUMA nodes, cores, PUs, caches, memory)
 * from sysfs under sysfs_root (NULL or "/": the machine), as hwloc would
 * count it; what discovery uses without hwloc. Unknown values stay 0. */
int scomm_topo_sysfs_cpus(scomm_topo_host_t *host, const char *sysfs_root);
/* The NUMA node whose CPUs (nodeN/cpulist under sysfs_root) alone meet
 * bind; else 0 on a machine of one node, else -1. */
int scomm_topo_sysfs_bind_numa(const char *sysfs_root, const cpu_set_t *bind);

/* ---- matrix.c ---- */
/* This rank's summary on host: accelerator local_rank % naccel, NUMA of
 * the accelerator or of the CPU binding (cpubind_numa, -1 unbound),
 * nearest NIC. */
void scomm_topo_rank_fill(const scomm_topo_host_t *host, int rank,
                          int local_rank, int local_size, int cpubind_numa,
                          scomm_topo_rank_t *out);
/* Group ranks into hosts (hostname + boot id) and fill the n x n matrix
 * (row-major). Returns the number of hosts. */
int scomm_topo_matrix(scomm_topo_rank_t *ranks, int n,
                      scomm_topo_link_t *m);
/* Preset for one host alone (cross-host KV transfer assumed), or, when
 * ranks != NULL, for the world's matrix. */
void scomm_topo_recommend(const scomm_topo_host_t *host,
                          const scomm_topo_rank_t *ranks, int n,
                          const scomm_topo_link_t *m, int nhosts,
                          scomm_topo_reco_t *out);

/* ---- topo_json.c ---- */
/* JSON text (malloc'd) of a host, and optionally of a world. */
char *scomm_topo_json_text(const scomm_topo_host_t *host,
                           const scomm_topo_rank_t *ranks, int n,
                           const scomm_topo_link_t *m, int nhosts,
                           const scomm_topo_reco_t *reco, int indent);
/* Read a host back from our JSON (a whole document with "host" or the
 * host object itself). err: "name: line L column C: why". */
int scomm_topo_host_from_json(const char *text, size_t len,
                              const char *name, scomm_topo_host_t *host,
                              char *err, size_t errlen);

/* ---- profile.c ---- */
/* How a transport should move bytes over one link class. */
typedef struct scomm_topo_profile {
    int    link;             /* scomm_link_kind_t */
    size_t align;            /* buffer alignment that pays off */
    size_t chunk;            /* pipeline chunk */
    int    nconn;            /* sockets (tcp) or queue pairs (rdma) */
    size_t max_packet;       /* largest single send / MTU-sized unit */
    size_t eager_max;        /* below: eager; above: rendezvous */
    int    zero_copy;        /* 0/1 */
} scomm_topo_profile_t;

/* Profile for link kind under preset p (NULL: the default preset). */
void scomm_topo_profile(int link, const scomm_preset_t *p,
                        scomm_topo_profile_t *out);
/* Profile for the link between two ranks of a matrix. */
void scomm_topo_profile_pair(const scomm_topo_link_t *m, int n, int a,
                             int b, const scomm_preset_t *p,
                             scomm_topo_profile_t *out);

#endif /* SCOMM_TOPO_TOPO_H */
