// SPDX-License-Identifier: MIT
//
// numa.c -- the NUMA topology reader and the three memory-policy system
// calls (getcpu, mbind, get_mempolicy), made with syscall(2) so no library
// is needed.
//
// The process topology is loaded once, lazily, by the first thread that
// asks for a node; `topo_state` says whether it is usable. Each thread keeps
// its last answer with the topology generation it came from, so a reload
// (a test pointing at another tree) is seen at once.
#define _GNU_SOURCE
#include "numa.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "debug/debug.h"
#include "sysfs.h"

#define MPOL_F_ADDR_FLAG  2                      // get_mempolicy: policy of an address
#define MPOL_MODE_FLAGS   (7 << 13)              // flag bits or'ed into a returned mode
#define NODEMASK_BITS     (8 * sizeof(uint64_t)) // our node mask is one word
#define LIST_BUF          4096                   // a cpulist of 1024 CPUs fits easily

bool mallet__numa_parse_list(const char *s, uint64_t *bits, unsigned nbits)
{
    memset(bits, 0, (nbits + 63) / 64 * sizeof *bits);
    while (*s == ' ' || *s == '\n')
        s++;
    if (*s == 0)
        return true;            // a node without CPUs prints an empty list
    for (;;) {
        unsigned lo = 0, hi;
        if (*s < '0' || *s > '9')
            return false;
        for (; *s >= '0' && *s <= '9'; s++)
            if ((lo = lo * 10 + (unsigned)(*s - '0')) >= nbits)
                return false;
        hi = lo;
        if (*s == '-') {
            s++;
            if (*s < '0' || *s > '9')
                return false;
            for (hi = 0; *s >= '0' && *s <= '9'; s++)
                if ((hi = hi * 10 + (unsigned)(*s - '0')) >= nbits)
                    return false;
            if (hi < lo)
                return false;
        }
        for (unsigned i = lo; i <= hi; i++)
            bits[i / 64] |= (uint64_t)1 << (i % 64);
        if (*s == ',') {
            s++;
            continue;
        }
        while (*s == '\n' || *s == ' ')
            s++;
        return *s == 0;
    }
}

// root + "/" + leaf (leaf may hold "node%u/"), built without snprintf.
static bool topo_path(char *out, size_t size, const char *root, int node, const char *leaf)
{
    mallet_buf_t b = { out, size, 0 };
    mallet__buf_str(&b, root);
    if (node >= 0) {
        mallet__buf_str(&b, "/node");
        mallet__buf_u64(&b, (uint64_t)node);
    }
    mallet__buf_str(&b, "/");
    mallet__buf_str(&b, leaf);
    if (b.len >= size)
        return false;
    out[b.len] = 0;
    return true;
}

bool mallet__numa_topo_read(mallet_numa_topo_t *t, const char *root)
{
    char path[512], text[LIST_BUF];
    uint64_t cpus[MALLET_NUMA_CPUS_MAX / 64];
    if (root == NULL)
        root = MALLET_NUMA_DEFAULT_ROOT;
    t->nodes = 0;
    t->cpus = 0;
    memset(t->cpu_node, -1, sizeof t->cpu_node);
    if (!topo_path(path, sizeof path, root, -1, "online") ||
        mallet__sysfs_read(path, text, sizeof text) < 0 ||
        !mallet__numa_parse_list(text, &t->nodes, MALLET_NUMA_NODES_MAX) || t->nodes == 0)
        return false;
    for (int n = 0; n < MALLET_NUMA_NODES_MAX; n++) {
        if (!((t->nodes >> n) & 1))
            continue;
        if (!topo_path(path, sizeof path, root, n, "cpulist") ||
            mallet__sysfs_read(path, text, sizeof text) < 0 ||
            !mallet__numa_parse_list(text, cpus, MALLET_NUMA_CPUS_MAX))
            return false;
        for (unsigned c = 0; c < MALLET_NUMA_CPUS_MAX; c++) {
            if (!((cpus[c / 64] >> (c % 64)) & 1))
                continue;
            t->cpu_node[c] = (int8_t)n;
            if (c + 1 > t->cpus)
                t->cpus = (uint16_t)(c + 1);
        }
    }
    return true;
}

int mallet__numa_topo_node(const mallet_numa_topo_t *t, unsigned cpu)
{
    return cpu < t->cpus ? t->cpu_node[cpu] : -1;
}

bool mallet__numa_getcpu(unsigned *cpu, unsigned *node)
{
    return syscall(SYS_getcpu, cpu, node, NULL) == 0;
}

bool mallet__numa_bind_preferred(void *p, size_t size, unsigned node)
{
    if (node >= MALLET_NUMA_NODES_MAX) {
        errno = EINVAL;
        return false;
    }
    uint64_t mask = (uint64_t)1 << node;
    // The kernel reads maxnode - 1 bits of the mask: one more than we hold.
    return syscall(SYS_mbind, p, size, MALLET_MPOL_PREFERRED, &mask, NODEMASK_BITS + 1, 0) == 0;
}

bool mallet__numa_policy(void *p, int *mode, int *node)
{
    int m = 0;
    uint64_t mask[MALLET_NUMA_CPUS_MAX / 64] = { 0 };   // room for kernels built with many nodes
    if (syscall(SYS_get_mempolicy, &m, mask, (unsigned long)MALLET_NUMA_CPUS_MAX, p, MPOL_F_ADDR_FLAG) != 0)
        return false;
    *mode = m & ~MPOL_MODE_FLAGS;
    *node = mask[0] ? __builtin_ctzll(mask[0]) : -1;
    return true;
}

// --- the process's placement state ------------------------------------------

enum { TOPO_UNREAD, TOPO_LOADING, TOPO_READY, TOPO_FAILED };

static mallet_numa_topo_t topo;          // the process topology (valid in TOPO_READY)
static uint8_t topo_state;               // TOPO_*
static uint32_t topo_gen = 1;            // bumped on every load; 0 never matches

static __thread struct {
    uint32_t gen;                        // topo_gen the answer came from
    uint32_t left;                       // calls before asking getcpu again
    int node;                            // the answer
} numa_cache __attribute__((tls_model("initial-exec")));

bool mallet__numa_load(const char *root)
{
    __atomic_store_n(&topo_state, TOPO_LOADING, __ATOMIC_RELAXED);
    bool ok = mallet__numa_topo_read(&topo, root);
    __atomic_add_fetch(&topo_gen, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&topo_state, ok ? TOPO_READY : TOPO_FAILED, __ATOMIC_RELEASE);
    return ok;
}

int mallet__numa_node_now(void)
{
    uint32_t gen = __atomic_load_n(&topo_gen, __ATOMIC_RELAXED);
    if (numa_cache.gen == gen && numa_cache.left > 0) {
        numa_cache.left--;
        return numa_cache.node;
    }
    int saved = errno;                   // a query: malloc's errno stays as it was
    uint8_t unread = TOPO_UNREAD;
    if (__atomic_compare_exchange_n(&topo_state, &unread, TOPO_LOADING, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
        mallet__numa_load(NULL);
        gen = __atomic_load_n(&topo_gen, __ATOMIC_RELAXED);
    }
    unsigned cpu = 0, knode = 0;
    int node = -1;
    if (mallet__numa_getcpu(&cpu, &knode)) {
        if (__atomic_load_n(&topo_state, __ATOMIC_ACQUIRE) == TOPO_READY)
            node = mallet__numa_topo_node(&topo, cpu);
        // A CPU the tree does not list (hot-plugged since): the kernel knows.
        if (node < 0 && knode < MALLET_NUMA_NODES_MAX)
            node = (int)knode;
    }
    numa_cache.gen = gen;
    numa_cache.left = MALLET_NUMA_REFRESH - 1;
    numa_cache.node = node;
    errno = saved;
    return node;
}
