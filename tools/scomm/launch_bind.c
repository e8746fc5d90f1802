/*
 * launch_bind.c - the CPUs of this host from sysfs and the binding plan of
 * `scomm launch` (launch_bind.h says what each mode gives).
 *
 * Design notes:
 *  1. Only single numbers are read from sysfs (a CPU's node from its
 *     nodeK entry, its core from topology/physical_package_id and
 *     core_id), never CPU lists: what cannot be read leaves the CPU on
 *     node 0 as a core of its own, so a container with a partial /sys
 *     still gets a plan.
 *  2. The CPU list is sorted by (node, core, CPU): a core's hardware
 *     threads are neighbours and so are a node's cores, so every plan is
 *     made of index ranges over that list.
 *  3. Share mode puts rank r on the node that holds the middle core of
 *     its slice of all cores, then splits each node between the ranks it
 *     got: by cores, or by CPUs when the node has fewer cores than ranks.
 *     If a node would get more ranks than it has CPUs (nodes of unequal
 *     size), the nodes are ignored and all CPUs are split, so shares still
 *     never overlap.
 */
#include "launch_bind.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The index ranges of the cores and nodes in a sorted CPU list. */
typedef struct {
    int ncores;
    int nnodes;
    int core_cpu[CPU_SETSIZE + 1];  /* core k: CPUs [core_cpu[k], [k+1]) */
    int node_core[CPU_SETSIZE + 1]; /* node k: cores [node_core[k], [k+1]) */
    int node_ranks[CPU_SETSIZE];    /* share mode: ranks put on node k */
} launch_layout_t;

static int launch_read_int(const char *path, int *v)
{
    FILE *f = fopen(path, "r");
    int   ok;

    if (f == NULL) {
        return -1;
    }
    ok = (fscanf(f, "%d", v) == 1) && (*v >= 0);
    fclose(f);
    return ok ? 0 : -1;
}

static void launch_cpu_where(const char *root, launch_cpu_t *c)
{
    char           path[512];
    DIR           *d;
    struct dirent *e;
    int            pkg, core;

    c->node = 0;
    c->core = -1 - c->cpu; /* a core of its own (note 1) */
    snprintf(path, sizeof(path), "%s/devices/system/cpu/cpu%d", root,
             c->cpu);
    d = opendir(path);
    if (d != NULL) {
        while ((e = readdir(d)) != NULL) {
            char *end;
            long  k;

            if (strncmp(e->d_name, "node", 4) != 0) {
                continue;
            }
            k = strtol(e->d_name + 4, &end, 10);
            if ((end != e->d_name + 4) && (*end == '\0') && (k >= 0) &&
                (k < CPU_SETSIZE)) {
                c->node = (int)k;
                break;
            }
        }
        closedir(d);
    }
    snprintf(path, sizeof(path), "%s/devices/system/cpu/cpu%d/topology/"
             "physical_package_id", root, c->cpu);
    if (launch_read_int(path, &pkg) != 0) {
        return;
    }
    snprintf(path, sizeof(path), "%s/devices/system/cpu/cpu%d/topology/"
             "core_id", root, c->cpu);
    if ((launch_read_int(path, &core) == 0) && (pkg < 2048) &&
        (core < (1 << 20))) {
        c->core = (pkg << 20) | core;
    }
}

static int launch_cpu_cmp(const void *pa, const void *pb)
{
    const launch_cpu_t *a = pa;
    const launch_cpu_t *b = pb;

    if (a->node != b->node) {
        return (a->node < b->node) ? -1 : 1;
    }
    if (a->core != b->core) {
        return (a->core < b->core) ? -1 : 1;
    }
    return (a->cpu > b->cpu) - (a->cpu < b->cpu);
}

int launch_bind_cpus(const char *root, const cpu_set_t *allowed,
                     launch_cpu_t *cpus, int max)
{
    int cpu, n = 0;

    for (cpu = 0; (cpu < CPU_SETSIZE) && (n < max); cpu++) {
        if (CPU_ISSET(cpu, allowed)) {
            cpus[n].cpu = cpu;
            launch_cpu_where(root, &cpus[n]);
            n++;
        }
    }
    qsort(cpus, (size_t)n, sizeof(*cpus), launch_cpu_cmp);
    return n;
}

static void launch_layout(const launch_cpu_t *cpus, int ncpu,
                          launch_layout_t *lo)
{
    int i;

    lo->ncores = 0;
    lo->nnodes = 0;
    for (i = 0; i < ncpu; i++) {
        int new_node = (i == 0) || (cpus[i].node != cpus[i - 1].node);

        if (new_node) {
            lo->node_core[lo->nnodes++] = lo->ncores;
        }
        if (new_node || (cpus[i].core != cpus[i - 1].core)) {
            lo->core_cpu[lo->ncores++] = i;
        }
    }
    lo->core_cpu[lo->ncores]  = ncpu;
    lo->node_core[lo->nnodes] = lo->ncores;
}

/* Add the CPUs of cores [c0, c1) to set. */
static void launch_add_cores(const launch_cpu_t *cpus,
                             const launch_layout_t *lo, int c0, int c1,
                             cpu_set_t *set)
{
    int i;

    for (i = lo->core_cpu[c0]; i < lo->core_cpu[c1]; i++) {
        CPU_SET(cpus[i].cpu, set);
    }
}

static void launch_add_cpus(const launch_cpu_t *cpus, int i0, int i1,
                            cpu_set_t *set)
{
    for (; i0 < i1; i0++) {
        CPU_SET(cpus[i0].cpu, set);
    }
}

/* Slice j of m of the range [lo, lo + len): its first index. */
static int launch_cut(int lo, int len, int j, int m)
{
    return lo + (int)(((long long)j * len) / m);
}

/* The node of the middle core of rank r's slice of all cores (note 3). */
static int launch_share_node(const launch_layout_t *lo, int r, int n)
{
    int mid = (int)(((2LL * r + 1) * lo->ncores) / (2LL * n));
    int k   = 0;

    while ((k + 1 < lo->nnodes) && (lo->node_core[k + 1] <= mid)) {
        k++;
    }
    return k;
}

static int launch_plan_share(const launch_cpu_t *cpus, int ncpu,
                             launch_layout_t *lo, int r, int n,
                             cpu_set_t *set)
{
    int node, m, j = 0, q, k, c0, nc, i0, nt;

    if (n > ncpu) {
        return 0; /* oversubscribed: leave it to the scheduler */
    }
    if (n < lo->nnodes) {
        /* Fewer ranks than nodes: whole nodes each. */
        launch_add_cores(cpus, lo, lo->node_core[launch_cut(0, lo->nnodes,
                                                            r, n)],
                         lo->node_core[launch_cut(0, lo->nnodes, r + 1, n)],
                         set);
        return 1;
    }
    memset(lo->node_ranks, 0, sizeof(lo->node_ranks));
    node = launch_share_node(lo, r, n);
    for (q = 0; q < n; q++) {
        k = launch_share_node(lo, q, n);
        lo->node_ranks[k]++;
        j += (q < r) && (k == node);
    }
    for (k = 0; k < lo->nnodes; k++) {
        if (lo->node_ranks[k] > lo->core_cpu[lo->node_core[k + 1]] -
                                    lo->core_cpu[lo->node_core[k]]) {
            /* A node with more ranks than CPUs: split all CPUs. */
            launch_add_cpus(cpus, launch_cut(0, ncpu, r, n),
                            launch_cut(0, ncpu, r + 1, n), set);
            return 1;
        }
    }
    m  = lo->node_ranks[node];
    c0 = lo->node_core[node];
    nc = lo->node_core[node + 1] - c0;
    if (nc >= m) {
        launch_add_cores(cpus, lo, launch_cut(c0, nc, j, m),
                         launch_cut(c0, nc, j + 1, m), set);
    } else {
        i0 = lo->core_cpu[c0];
        nt = lo->core_cpu[c0 + nc] - i0;
        launch_add_cpus(cpus, launch_cut(i0, nt, j, m),
                        launch_cut(i0, nt, j + 1, m), set);
    }
    return 1;
}

int launch_bind_plan(const launch_cpu_t *cpus, int ncpu, int mode, int r,
                     int n, cpu_set_t *set)
{
    launch_layout_t *lo;
    int              k, bound = 1;

    CPU_ZERO(set);
    if ((mode == LAUNCH_BIND_NONE) || (ncpu <= 0) || (n <= 0) || (r < 0) ||
        (r >= n)) {
        return 0;
    }
    lo = malloc(sizeof(*lo));
    if (lo == NULL) {
        return 0;
    }
    launch_layout(cpus, ncpu, lo);
    switch (mode) {
    case LAUNCH_BIND_CORE:
        if (n <= lo->ncores) {
            launch_add_cores(cpus, lo, r, r + 1, set);
        } else {
            k = r % ncpu; /* more ranks than cores: hardware threads */
            launch_add_cpus(cpus, k, k + 1, set);
        }
        break;
    case LAUNCH_BIND_NUMA:
        k = (int)(((long long)r * lo->nnodes) / n);
        launch_add_cores(cpus, lo, lo->node_core[k], lo->node_core[k + 1],
                         set);
        break;
    default:
        bound = launch_plan_share(cpus, ncpu, lo, r, n, set);
        break;
    }
    free(lo);
    return bound && (CPU_COUNT(set) > 0);
}
