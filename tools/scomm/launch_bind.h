/*
 * launch_bind.h - where `scomm launch` pins each local rank: the CPUs of
 * this host (NUMA node, physical core) and the plan that gives local rank
 * r of n its share of them.
 *
 * Modes (--bind-to):
 *   share (the default)  every rank an equal share of the allowed cores,
 *                        inside one NUMA node when there are several;
 *                        one rank keeps every allowed CPU; more ranks
 *                        than allowed CPUs: no binding
 *   core                 rank r the r-th allowed core (all its hardware
 *                        threads), wrapping round when there are fewer
 *   numa                 rank r NUMA node floor(r * nodes / n), whole
 *   none                 no binding
 *
 * Invariants:
 *  1. A plan never gives a CPU outside the allowed set, and never an
 *     empty set (it says "unbound" instead).
 *  2. In share mode the sets of different ranks never overlap, and when
 *     every node gets a rank they cover the allowed set.
 *  3. The plan is a pure function of the CPU list, so it is unit-tested
 *     on made-up machines (tests/unit/test_launch_bind.c).
 */
#ifndef SCOMM_TOOLS_LAUNCH_BIND_H
#define SCOMM_TOOLS_LAUNCH_BIND_H

#include <sched.h>

enum {
    LAUNCH_BIND_SHARE = 0,
    LAUNCH_BIND_CORE  = 1,
    LAUNCH_BIND_NUMA  = 2,
    LAUNCH_BIND_NONE  = 3
};

typedef struct {
    int cpu;  /* the CPU number */
    int node; /* its NUMA node (0 without NUMA information) */
    int core; /* a key shared by the hardware threads of one core */
} launch_cpu_t;

/*
 * The CPUs of allowed, with their node and core read from sysfs under
 * root (normally "/sys"), sorted by node, core and CPU. Returns how many
 * were written to cpus (at most max).
 */
int launch_bind_cpus(const char *root, const cpu_set_t *allowed,
                     launch_cpu_t *cpus, int max);

/*
 * Local rank r of n: the CPUs it gets in *set. cpus is sorted as
 * launch_bind_cpus leaves it. Returns 1 when set holds the rank's CPUs,
 * 0 when the rank is to stay unbound.
 */
int launch_bind_plan(const launch_cpu_t *cpus, int ncpu, int mode, int r,
                     int n, cpu_set_t *set);

#endif /* SCOMM_TOOLS_LAUNCH_BIND_H */
