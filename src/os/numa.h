// SPDX-License-Identifier: MIT
//
// numa.h -- NUMA topology and memory policy, for placing a thread heap's
// memory on the node of the CPU the thread runs on.
//
//   topology   which node each CPU belongs to, read from a sysfs tree
//              (default /sys/devices/system/node): the `online` node list,
//              then nodeN/cpulist for every online node. Lists are the
//              kernel's text form, "0-3,8-11".
//   getcpu     the CPU (and the kernel's idea of its node) the caller runs
//              on now, by the raw system call.
//   bind       mbind(MPOL_PREFERRED) of a range to one node: later faults
//              in the range take memory from that node while it has some,
//              and from any other node after that, never failing.
//   policy     get_mempolicy(MPOL_F_ADDR): the policy a mapped address has.
//
// No libnuma: the three system calls are made directly, the files are
// read with open/read into fixed buffers. Nothing here allocates.
//
// Limits: nodes 0..63 (one 64-bit node mask) and CPUs 0..1023; a CPU or a
// node outside them is left to the kernel's own answer.
#ifndef MALLET_OS_NUMA_H
#define MALLET_OS_NUMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MALLET_NUMA_NODES_MAX 64
#define MALLET_NUMA_CPUS_MAX  1024
#define MALLET_NUMA_DEFAULT_ROOT "/sys/devices/system/node"

// The memory policy modes of <linux/mempolicy.h> this file uses.
#define MALLET_MPOL_DEFAULT   0
#define MALLET_MPOL_PREFERRED 1

typedef struct mallet_numa_topo {
    uint64_t nodes;                              // bit n: node n is online
    uint16_t cpus;                               // highest CPU mapped + 1
    int8_t cpu_node[MALLET_NUMA_CPUS_MAX];       // node of each CPU, -1 unknown
} mallet_numa_topo_t;

// Parse a kernel list ("0-3,8-11", trailing newline allowed) into bits
// (nbits of them, cleared first). false on a syntax error, a backwards
// range, or a number >= nbits.
bool mallet__numa_parse_list(const char *text, uint64_t *bits, unsigned nbits);

// Read the topology under root (NULL: the default). false when the node
// list or a node's cpulist cannot be read or parsed; *t is then unusable.
bool mallet__numa_topo_read(mallet_numa_topo_t *t, const char *root);

// The node of cpu in t, or -1 when t does not know it.
int mallet__numa_topo_node(const mallet_numa_topo_t *t, unsigned cpu);

// The CPU the caller runs on, and the kernel's node for it. false when the
// system call fails.
bool mallet__numa_getcpu(unsigned *cpu, unsigned *node);

// Prefer node for the pages of [p, p + size) faulted from now on. p and
// size page aligned. false (errno from mbind) on failure.
bool mallet__numa_bind_preferred(void *p, size_t size, unsigned node);

// The policy of the mapping at p: *mode (MALLET_MPOL_*) and *node, the
// lowest node of its mask (-1 when the mask is empty). false on failure.
bool mallet__numa_policy(void *p, int *mode, int *node);

// --- the process's placement state (used by span.c when numa=1) -------------

// Load the process topology from root (NULL: the default) once; a later
// call with another root replaces it (tests). false when it cannot be read:
// then the kernel's node from getcpu is used alone.
bool mallet__numa_load(const char *root);

// The node the calling thread's new memory should come from: the node of
// the CPU it runs on, looked up in the loaded topology. The answer is kept
// per thread and asked again every MALLET_NUMA_REFRESH calls, since a thread
// rarely moves and getcpu is a system call. -1 when nothing is known.
#define MALLET_NUMA_REFRESH 16
int mallet__numa_node_now(void);

#endif
