/*
 * test_topo_sysfs.c - the CPU side of discovery from sysfs, what a build
 * without hwloc uses (scomm_topo_sysfs_cpus, scomm_topo_sysfs_bind_numa in
 * src/topo/discover.c).
 *
 *  1. A tree written here: 2 packages x 2 cores x 2 threads, per-core L1d,
 *     L1i and L2, a per-package L3, 2 NUMA nodes; the counts are known by
 *     construction. Then CPUs taken offline, a binding per node, and a tree
 *     with nothing in it.
 *  2. This machine: the same numbers as hwloc's, when hwloc is built in.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scomm.h"
#include "st_test.h"
#include "topo/topo.h"

static char root[] = "/tmp/test_topo_sysfs.XXXXXX";

/* Write text to root/path, making the directories on the way. */
static void put(const char *text, const char *fmt, ...)
{
    char path[512], *s;
    va_list ap;
    FILE *f;
    int n;

    n = snprintf(path, sizeof(path), "%s/", root);
    va_start(ap, fmt);
    vsnprintf(path + n, sizeof(path) - (size_t)n, fmt, ap);
    va_end(ap);
    for (s = strchr(path + strlen(root) + 1, '/'); s != NULL;
         s = strchr(s + 1, '/')) {
        *s = '\0';
        mkdir(path, 0755);
        *s = '/';
    }
    f = fopen(path, "w");
    ST_ASSERT(f != NULL);
    fprintf(f, "%s\n", text);
    ST_ASSERT(fclose(f) == 0);
}

/* cpu c: package c / 4, core pair (c & ~1, c | 1), node = package. */
static void make_tree(void)
{
    static const char *const level[] = {"1", "1", "2", "3"};
    static const char *const type[]  = {"Data", "Instruction", "Unified",
                                        "Unified"};
    static const char *const size[]  = {"32K", "64K", "1024K", "16384K"};
    char v[32];
    int c, i;

    ST_ASSERT(mkdtemp(root) != NULL);
    put("0-7", "sys/devices/system/cpu/online");
    for (c = 0; c < 8; c++) {
        snprintf(v, sizeof(v), "%d", c / 4);
        put(v, "sys/devices/system/cpu/cpu%d/topology/physical_package_id",
            c);
        snprintf(v, sizeof(v), "%d-%d", c & ~1, c | 1);
        put(v, "sys/devices/system/cpu/cpu%d/topology/core_cpus_list", c);
        for (i = 0; i < 4; i++) {
            put(level[i], "sys/devices/system/cpu/cpu%d/cache/index%d/level",
                c, i);
            put(type[i], "sys/devices/system/cpu/cpu%d/cache/index%d/type", c,
                i);
            put(size[i], "sys/devices/system/cpu/cpu%d/cache/index%d/size", c,
                i);
            if (i == 3) {
                snprintf(v, sizeof(v), "%d-%d", (c / 4) * 4, (c / 4) * 4 + 3);
            } else {
                snprintf(v, sizeof(v), "%d,%d", c & ~1, c | 1);
            }
            put(v, "sys/devices/system/cpu/cpu%d/cache/index%d/"
                "shared_cpu_list", c, i);
        }
    }
    put("0-3", "sys/devices/system/node/node0/cpulist");
    put("4-7", "sys/devices/system/node/node1/cpulist");
    put("Node 0 MemTotal:    1000 kB\nNode 0 MemFree: 10 kB",
        "sys/devices/system/node/node0/meminfo");
    put("Node 1 MemTotal:    2000 kB", "sys/devices/system/node/node1/meminfo");
    put("0-1", "sys/devices/system/node/online");
    put("0-1", "sys/devices/system/node/has_cpu");
    put("MemTotal: 9999 kB", "proc/meminfo"); /* nodes win over this */
}

static void check_cache(const scomm_topo_cache_t *c, uint64_t size,
                        int count)
{
    ST_ASSERT_EQ(c->size, size);
    ST_ASSERT_EQ(c->count, count);
}

static void test_tree(void)
{
    static scomm_topo_host_t h;
    cpu_set_t bind;

    make_tree();
    ST_ASSERT_OK(scomm_topo_sysfs_cpus(&h, root));
    ST_ASSERT_EQ(h.pus, 8);
    ST_ASSERT_EQ(h.cores, 4);
    ST_ASSERT_EQ(h.packages, 2);
    ST_ASSERT_EQ(h.numa_nodes, 2);
    ST_ASSERT_EQ(h.memory, 3000u << 10);
    check_cache(&h.l1d, 32u << 10, 4);
    check_cache(&h.l1i, 64u << 10, 4);
    check_cache(&h.l2, 1u << 20, 4);
    check_cache(&h.l3, 16u << 20, 2);

    /* the second package's first core offline: one core fewer */
    put("0-3,6-7", "sys/devices/system/cpu/online");
    ST_ASSERT_OK(scomm_topo_sysfs_cpus(&h, root));
    ST_ASSERT_EQ(h.pus, 6);
    ST_ASSERT_EQ(h.cores, 3);
    ST_ASSERT_EQ(h.packages, 2);
    check_cache(&h.l1d, 32u << 10, 3);
    check_cache(&h.l3, 16u << 20, 2);
    /* the whole second package: one of each */
    put("0-3", "sys/devices/system/cpu/online");
    ST_ASSERT_OK(scomm_topo_sysfs_cpus(&h, root));
    ST_ASSERT_EQ(h.pus, 4);
    ST_ASSERT_EQ(h.packages, 1);
    check_cache(&h.l3, 16u << 20, 1);
    /* garbage: no CPU counted, nothing crashes */
    put("0-x", "sys/devices/system/cpu/online");
    ST_ASSERT_OK(scomm_topo_sysfs_cpus(&h, root));
    ST_ASSERT_EQ(h.pus, 0);
    ST_ASSERT_EQ(h.packages, 0);

    /* bindings */
    CPU_ZERO(&bind);
    CPU_SET(1, &bind);
    ST_ASSERT_EQ(scomm_topo_sysfs_bind_numa(root, &bind), 0);
    CPU_ZERO(&bind);
    CPU_SET(5, &bind);
    CPU_SET(6, &bind);
    ST_ASSERT_EQ(scomm_topo_sysfs_bind_numa(root, &bind), 1);
    CPU_SET(3, &bind);
    ST_ASSERT_EQ(scomm_topo_sysfs_bind_numa(root, &bind), -1);
}

/* A root without /sys or /proc: unknown (0), never an error. */
static void test_empty(void)
{
    static scomm_topo_host_t h;
    char empty[600];
    cpu_set_t bind;

    snprintf(empty, sizeof(empty), "%s/nothing", root);
    ST_ASSERT(mkdir(empty, 0755) == 0);
    memset(&h, 0x55, sizeof(h));
    ST_ASSERT_OK(scomm_topo_sysfs_cpus(&h, empty));
    ST_ASSERT_EQ(h.pus, 0);
    ST_ASSERT_EQ(h.cores, 0);
    ST_ASSERT_EQ(h.numa_nodes, 0);
    ST_ASSERT_EQ(h.memory, 0);
    ST_ASSERT_EQ(h.l3.count, 0);
    CPU_ZERO(&bind);
    CPU_SET(0, &bind);
    ST_ASSERT_EQ(scomm_topo_sysfs_bind_numa(empty, &bind), 0);
}

/* This machine, sysfs against hwloc. */
static void test_machine(void)
{
    static scomm_topo_host_t hw, fs;
    char err[512];

    if (strstr(scomm_build_features(), "hwloc") == NULL) {
        printf("machine: no hwloc in this build to compare with\n");
        return;
    }
    ST_ASSERT_OK(scomm_topo_discover(&hw, NULL, "/", err, sizeof(err)));
    ST_ASSERT(strcmp(hw.source, "hwloc") == 0);
    memset(&fs, 0, sizeof(fs));
    ST_ASSERT_OK(scomm_topo_sysfs_cpus(&fs, "/"));
    printf("machine: hwloc %d packages, %d numa, %d cores, %d pus; sysfs "
           "%d, %d, %d, %d\n", hw.packages, hw.numa_nodes, hw.cores, hw.pus,
           fs.packages, fs.numa_nodes, fs.cores, fs.pus);
    ST_ASSERT_EQ(fs.packages, hw.packages);
    ST_ASSERT_EQ(fs.numa_nodes, hw.numa_nodes);
    ST_ASSERT_EQ(fs.cores, hw.cores);
    ST_ASSERT_EQ(fs.pus, hw.pus);
    check_cache(&fs.l1d, hw.l1d.size, hw.l1d.count);
    check_cache(&fs.l1i, hw.l1i.size, hw.l1i.count);
    check_cache(&fs.l2, hw.l2.size, hw.l2.count);
    check_cache(&fs.l3, hw.l3.size, hw.l3.count);
    /* hwloc may set huge pages apart: within a tenth */
    ST_ASSERT((fs.memory > hw.memory - hw.memory / 10) &&
              (fs.memory < hw.memory + hw.memory / 10));
}

int main(void)
{
    char cmd[600];

    unsetenv("SCOMM_TOPO_FILE");
    unsetenv("SCOMM_SYSFS_ROOT");
    unsetenv("SCOMM_TOPO_DUMP_FILE");
    test_tree();
    test_empty();
    test_machine();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    ST_ASSERT(system(cmd) == 0);
    printf("test_topo_sysfs: ok\n");
    return 0;
}
