/*
 * test_launch_bind.c - the binding plan of `scomm launch`
 * (tools/scomm/launch_bind.c) on made-up machines, and its sysfs reader on
 * a made-up /sys.
 *
 * Checked independently of the plan's arithmetic: every set lies inside
 * the machine's CPUs and is not empty; in share mode no two ranks share a
 * CPU, one rank gets every CPU, and on machines whose nodes are alike the
 * shares cover every CPU, stay inside one node and hold whole cores when
 * there are enough; core, numa and none do what their names say.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "launch_bind.h"
#include "st_test.h"

#define MAXCPU 256

/* ST_ASSERT with a message of its own */
#define CHECK(_cond, ...)                                                   \
    do {                                                                    \
        if (!(_cond)) {                                                     \
            st__fail(__FILE__, __LINE__, __VA_ARGS__);                      \
        }                                                                   \
    } while (0)

typedef struct {
    launch_cpu_t cpu[MAXCPU];
    int          n;
    int          nodes, cores, threads; /* per machine, per node, per core */
} machine_t;

/* nodes x cores x threads, numbered like Linux: thread t of core c of node
 * k is CPU t * (nodes * cores) + k * cores + c; allowed[] NULL: all. */
static void make(machine_t *m, int nodes, int cores, int threads,
                 const char *allowed)
{
    int k, c, t, i;

    memset(m, 0, sizeof(*m));
    m->nodes   = nodes;
    m->cores   = cores;
    m->threads = threads;
    for (k = 0; k < nodes; k++) {
        for (c = 0; c < cores; c++) {
            for (t = 0; t < threads; t++) {
                int cpu = t * nodes * cores + k * cores + c;

                if ((allowed != NULL) && (allowed[cpu] != '1')) {
                    continue;
                }
                m->cpu[m->n].cpu  = cpu;
                m->cpu[m->n].node = k;
                m->cpu[m->n].core = k * 1000 + c;
                m->n++;
            }
        }
    }
    /* the order launch_bind_cpus leaves: by node, core, CPU */
    for (i = 1; i < m->n; i++) {
        launch_cpu_t x = m->cpu[i];
        int j = i - 1;

        while ((j >= 0) && ((m->cpu[j].node > x.node) ||
                            ((m->cpu[j].node == x.node) &&
                             ((m->cpu[j].core > x.core) ||
                              ((m->cpu[j].core == x.core) &&
                               (m->cpu[j].cpu > x.cpu)))))) {
            m->cpu[j + 1] = m->cpu[j];
            j--;
        }
        m->cpu[j + 1] = x;
    }
}

static const launch_cpu_t *find(const machine_t *m, int cpu)
{
    int i;

    for (i = 0; i < m->n; i++) {
        if (m->cpu[i].cpu == cpu) {
            return &m->cpu[i];
        }
    }
    return NULL;
}

/* Every CPU of set is on the machine; returns the node of them all, or -1
 * when they span nodes. */
static int one_node(const machine_t *m, const cpu_set_t *set)
{
    int cpu, node = -2;

    for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        const launch_cpu_t *c;

        if (!CPU_ISSET(cpu, set)) {
            continue;
        }
        c = find(m, cpu);
        CHECK(c != NULL, "CPU %d is not on the machine", cpu);
        if (node == -2) {
            node = c->node;
        } else if (node != c->node) {
            node = -1;
        }
    }
    return node;
}

/* Whether set holds every allowed thread of each core it touches. */
static int whole_cores(const machine_t *m, const cpu_set_t *set)
{
    int i, j;

    for (i = 0; i < m->n; i++) {
        if (!CPU_ISSET(m->cpu[i].cpu, set)) {
            continue;
        }
        for (j = 0; j < m->n; j++) {
            if ((m->cpu[j].core == m->cpu[i].core) &&
                !CPU_ISSET(m->cpu[j].cpu, set)) {
                return 0;
            }
        }
    }
    return 1;
}

/* Share mode for n ranks: the checks of the header comment. */
static void check_share(const machine_t *m, int n, int uniform)
{
    cpu_set_t all, set;
    int r, total = 0;

    CPU_ZERO(&all);
    for (r = 0; r < n; r++) {
        int bound = launch_bind_plan(m->cpu, m->n, LAUNCH_BIND_SHARE, r, n,
                                     &set);
        cpu_set_t both;

        if (n > m->n) {
            CHECK(!bound, "%d ranks on %d CPUs: rank %d bound", n,
                          m->n, r);
            continue;
        }
        CHECK(bound && (CPU_COUNT(&set) > 0), "n=%d rank %d: "
                      "unbound or empty", n, r);
        (void)one_node(m, &set);
        CPU_AND(&both, &all, &set);
        CHECK(CPU_COUNT(&both) == 0, "n=%d: rank %d shares a CPU "
                      "with a lower rank", n, r);
        CPU_OR(&all, &all, &set);
        total += CPU_COUNT(&set);
        if (uniform && (n >= m->nodes)) {
            CHECK(one_node(m, &set) >= 0, "n=%d: rank %d spans "
                          "NUMA nodes", n, r);
        }
        if (uniform && (n * m->threads <= m->n)) {
            CHECK(whole_cores(m, &set), "n=%d: rank %d has part "
                          "of a core", n, r);
        }
        if (uniform && (m->n % n == 0) && (n % m->nodes == 0) &&
            ((m->cores * m->nodes) % n == 0)) {
            CHECK(CPU_COUNT(&set) == m->n / n, "n=%d: rank %d has "
                          "%d CPUs, want %d", n, r, CPU_COUNT(&set),
                          m->n / n);
        }
    }
    if ((n <= m->n) && (uniform || (n == 1))) {
        CHECK(total == m->n, "n=%d: the shares cover %d of %d CPUs",
                      n, total, m->n);
    }
}

static void check_modes(const machine_t *m)
{
    cpu_set_t set;
    int n, r;

    for (n = 1; n <= m->n + 1; n++) {
        for (r = 0; r < n; r++) {
            ST_ASSERT(!launch_bind_plan(m->cpu, m->n, LAUNCH_BIND_NONE, r, n,
                                        &set));
            ST_ASSERT(launch_bind_plan(m->cpu, m->n, LAUNCH_BIND_CORE, r, n,
                                       &set));
            (void)one_node(m, &set);
            if (n * m->threads <= m->n) {
                /* one whole core each, the r-th */
                CHECK(whole_cores(m, &set) &&
                              (CPU_COUNT(&set) == m->threads),
                              "core n=%d r=%d: %d CPUs", n, r,
                              CPU_COUNT(&set));
            } else {
                ST_ASSERT(CPU_COUNT(&set) == 1);
            }
            ST_ASSERT(launch_bind_plan(m->cpu, m->n, LAUNCH_BIND_NUMA, r, n,
                                       &set));
            CHECK(one_node(m, &set) == r * m->nodes / n,
                          "numa n=%d r=%d: node %d", n, r,
                          one_node(m, &set));
            ST_ASSERT(CPU_COUNT(&set) == m->n / m->nodes);
        }
    }
}

/* A made-up /sys with 4 CPUs: 0,1 on node 1 (core 7, threads 0 and 1),
 * 2 on node 0, 3 with nothing but its directory. */
static void check_sysfs(void)
{
    char root[] = "/tmp/scomm-bind-XXXXXX", p[512];
    static const struct { int cpu, node, pkg, core; } w[] = {
        {0, 1, 0, 7}, {1, 1, 0, 7}, {2, 0, 1, 7}, {3, -1, -1, -1}};
    launch_cpu_t got[8];
    cpu_set_t allowed;
    size_t i;
    int n;
    FILE *f;

    ST_ASSERT(mkdtemp(root) != NULL);
    CPU_ZERO(&allowed);
    for (i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "mkdir -p %s/devices/system/cpu/cpu%d/"
                 "topology", root, w[i].cpu);
        ST_ASSERT(system(p) == 0);
        CPU_SET(w[i].cpu, &allowed);
        if (w[i].node >= 0) {
            snprintf(p, sizeof(p), "%s/devices/system/cpu/cpu%d/node%d",
                     root, w[i].cpu, w[i].node);
            ST_ASSERT(mkdir(p, 0700) == 0);
            snprintf(p, sizeof(p), "%s/devices/system/cpu/cpu%d/topology/"
                     "physical_package_id", root, w[i].cpu);
            ST_ASSERT((f = fopen(p, "w")) != NULL);
            fprintf(f, "%d\n", w[i].pkg);
            fclose(f);
            snprintf(p, sizeof(p), "%s/devices/system/cpu/cpu%d/topology/"
                     "core_id", root, w[i].cpu);
            ST_ASSERT((f = fopen(p, "w")) != NULL);
            fprintf(f, "%d\n", w[i].core);
            fclose(f);
        }
    }
    n = launch_bind_cpus(root, &allowed, got, 8);
    ST_ASSERT_EQ(n, 4);
    /* node 0: CPUs 2 and 3 (3: no information, node 0, a core of its
     * own), then node 1: CPUs 0 and 1, one core */
    ST_ASSERT((got[0].node == 0) && (got[1].node == 0));
    ST_ASSERT(((got[0].cpu == 2) && (got[1].cpu == 3)) ||
              ((got[0].cpu == 3) && (got[1].cpu == 2)));
    ST_ASSERT(got[0].core != got[1].core);
    ST_ASSERT((got[2].cpu == 0) && (got[3].cpu == 1));
    ST_ASSERT((got[2].node == 1) && (got[2].core == got[3].core));
    snprintf(p, sizeof(p), "rm -rf %s", root);
    ST_ASSERT(system(p) == 0);
}

int main(void)
{
    static const int shapes[][3] = {
        {1, 1, 1}, {1, 2, 1}, {1, 1, 2}, {1, 4, 2}, {2, 4, 2}, {2, 3, 1},
        {4, 2, 2}, {3, 5, 1}, {8, 4, 2}};
    machine_t *m = malloc(sizeof(*m));
    char allowed[MAXCPU + 1];
    size_t s;
    int n, i, trial;
    unsigned seed = 12345;

    ST_ASSERT(m != NULL);
    for (s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        make(m, shapes[s][0], shapes[s][1], shapes[s][2], NULL);
        for (n = 1; n <= m->n + 1; n++) {
            check_share(m, n, 1);
        }
        check_modes(m);
    }
    /* The acceptance cases: one rank keeps everything, two on two CPUs
     * get one each. */
    {
        cpu_set_t a, b;

        make(m, 1, 2, 1, NULL);
        ST_ASSERT(launch_bind_plan(m->cpu, m->n, LAUNCH_BIND_SHARE, 0, 1,
                                   &a) && (CPU_COUNT(&a) == 2));
        ST_ASSERT(launch_bind_plan(m->cpu, m->n, LAUNCH_BIND_SHARE, 0, 2,
                                   &a) && (CPU_COUNT(&a) == 1));
        ST_ASSERT(launch_bind_plan(m->cpu, m->n, LAUNCH_BIND_SHARE, 1, 2,
                                   &b) && (CPU_COUNT(&b) == 1));
        ST_ASSERT(!CPU_EQUAL(&a, &b));
    }
    /* Random allowed subsets (uneven nodes): the checks that hold for
     * any machine. */
    for (trial = 0; trial < 200; trial++) {
        int nodes = 1 + (int)(rand_r(&seed) % 4);
        int cores = 1 + (int)(rand_r(&seed) % 6);
        int thr   = 1 + (int)(rand_r(&seed) % 2);

        for (i = 0; i < nodes * cores * thr; i++) {
            allowed[i] = (rand_r(&seed) % 3 != 0) ? '1' : '0';
        }
        allowed[0] = '1';
        allowed[nodes * cores * thr] = '\0';
        make(m, nodes, cores, thr, allowed);
        for (n = 1; n <= m->n + 1; n++) {
            check_share(m, n, 0);
        }
    }
    check_sysfs();
    free(m);
    printf("test_launch_bind: all checks passed\n");
    return 0;
}
