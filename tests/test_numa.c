// SPDX-License-Identifier: MIT
//
// test_numa.c -- the NUMA topology reader, the cpu -> node answer each
// thread gets, and the memory-policy system calls.
//
// The topology tests build fake sysfs trees in a temporary folder, shaped
// like /sys/devices/system/node (online, possible, has_cpu, nodeN/cpulist),
// so two-node placement is checked on a one-node machine. The policy test
// binds a real mapping and reads the policy back from the kernel.
#include "test.h"
#include "os/numa.h"
#include "os/os.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/stat.h>

static char tree[64];                   // the fake tree's root

static void put(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tree, rel);
    char *slash = strrchr(path, '/');
    *slash = 0;
    mkdir(path, 0755);
    *slash = '/';
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

// Each test that makes a tree removes it at its end (test processes end
// with _exit, so atexit would not run).
static void tree_remove(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tree);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tree);
}

// A fake tree whose node0 holds cpus0 and node1 cpus1.
static void two_nodes(const char *cpus0, const char *cpus1)
{
    snprintf(tree, sizeof tree, "/tmp/mallet-numa-XXXXXX");
    if (mkdtemp(tree) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    put("online", "0-1\n");
    put("possible", "0-1\n");
    put("has_cpu", "0-1\n");
    put("has_memory", "0-1\n");
    put("node0/cpulist", cpus0);
    put("node1/cpulist", cpus1);
}

static int cpus_allowed(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return 0;
    return CPU_ISSET(0, &set) && CPU_ISSET(1, &set) ? 2 : 1;
}

static bool pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set) == 0;
}

TEST(lists_parse_like_the_kernel_prints_them)
{
    uint64_t b[2];
    CHECK(mallet__numa_parse_list("0-3,8-11\n", b, 128));
    CHECK(b[0] == 0xf0f && b[1] == 0);
    CHECK(mallet__numa_parse_list("5", b, 128) && b[0] == 0x20);
    CHECK(mallet__numa_parse_list("0,2,64-65,127\n", b, 128));
    CHECK(b[0] == 0x5 && b[1] == (0x3 | (uint64_t)1 << 63));
    CHECK(mallet__numa_parse_list("\n", b, 128) && b[0] == 0 && b[1] == 0);
    CHECK(mallet__numa_parse_list("", b, 128) && b[0] == 0);
    CHECK(!mallet__numa_parse_list("3-1", b, 128));
    CHECK(!mallet__numa_parse_list("0-", b, 128));
    CHECK(!mallet__numa_parse_list("0,,1", b, 128));
    CHECK(!mallet__numa_parse_list("a", b, 128));
    CHECK(!mallet__numa_parse_list("1 2", b, 128));
    CHECK(!mallet__numa_parse_list("128", b, 128));
    CHECK(!mallet__numa_parse_list("0-99999999999", b, 128));
}

TEST(a_fake_two_node_tree_maps_each_cpu_to_its_node)
{
    two_nodes("0\n", "1\n");
    mallet_numa_topo_t t;
    CHECK(mallet__numa_topo_read(&t, tree));
    CHECK(t.nodes == 3);
    CHECK(t.cpus == 2);
    CHECK(mallet__numa_topo_node(&t, 0) == 0);
    CHECK(mallet__numa_topo_node(&t, 1) == 1);
    CHECK(mallet__numa_topo_node(&t, 2) == -1);
    CHECK(mallet__numa_topo_node(&t, 5000) == -1);
    tree_remove();
}

TEST(ranges_and_holes_in_the_node_list)
{
    snprintf(tree, sizeof tree, "/tmp/mallet-numa-XXXXXX");
    CHECK(mkdtemp(tree) != NULL);
    put("online", "0,2\n");
    put("node0/cpulist", "0-3,8-11\n");
    put("node2/cpulist", "4-7,12-15\n");
    put("node1/cpulist", "garbage: node1 is offline and never read\n");
    mallet_numa_topo_t t;
    CHECK(mallet__numa_topo_read(&t, tree));
    CHECK(t.nodes == 5 && t.cpus == 16);
    for (unsigned c = 0; c < 16; c++)
        CHECK(mallet__numa_topo_node(&t, c) == ((c / 4) % 2 ? 2 : 0));
    tree_remove();
}

TEST(a_missing_or_damaged_tree_is_refused)
{
    mallet_numa_topo_t t;
    CHECK(!mallet__numa_topo_read(&t, "/nonexistent/mallet/node"));
    two_nodes("0\n", "one\n");
    CHECK(!mallet__numa_topo_read(&t, tree));
    put("node1/cpulist", "1\n");
    put("online", "0-1,\n");
    CHECK(!mallet__numa_topo_read(&t, tree));
    put("online", "0-1\n");
    CHECK(mallet__numa_topo_read(&t, tree));
    CHECK(!mallet__numa_load("/nonexistent/mallet/node"));
    tree_remove();
}

// What each thread's new spans would be placed on: a thread pinned to a
// CPU asks for its node. The tree is crossed (cpu 0 on node 1, cpu 1 on
// node 0) so the answer must come from the tree, not from the kernel,
// which says node 0 for both on this machine.
static void *ask_node(void *arg)
{
    intptr_t cpu = (intptr_t)arg;
    if (!pin((int)cpu))
        return (void *)(intptr_t)-2;
    return (void *)(intptr_t)mallet__numa_node_now();
}

TEST(each_thread_gets_the_node_of_its_cpu)
{
    if (cpus_allowed() < 2)
        TEST_SKIP("needs CPUs 0 and 1 in the affinity mask");
    two_nodes("1\n", "0\n");
    CHECK(mallet__numa_load(tree));
    for (intptr_t cpu = 0; cpu < 2; cpu++) {
        pthread_t th;
        void *node;
        CHECK(pthread_create(&th, NULL, ask_node, (void *)cpu) == 0);
        CHECK(pthread_join(th, &node) == 0);
        CHECK((intptr_t)node == 1 - cpu);
    }
    tree_remove();
}

TEST(a_thread_that_moves_gets_its_new_node_within_the_refresh_cadence)
{
    if (cpus_allowed() < 2)
        TEST_SKIP("needs CPUs 0 and 1 in the affinity mask");
    two_nodes("0\n", "1\n");
    CHECK(mallet__numa_load(tree));
    CHECK(pin(0));
    CHECK(mallet__numa_node_now() == 0);
    CHECK(pin(1));
    int node = -1;
    for (int i = 0; i < MALLET_NUMA_REFRESH; i++)
        node = mallet__numa_node_now();
    CHECK(node == 1);
    // A reload is seen at once, without waiting for the cadence.
    put("node0/cpulist", "1\n");
    put("node1/cpulist", "0\n");
    CHECK(mallet__numa_load(tree));
    CHECK(mallet__numa_node_now() == 0);
    tree_remove();
}

TEST(the_real_topology_agrees_with_the_kernel)
{
    mallet_numa_topo_t t;
    if (!mallet__numa_topo_read(&t, NULL))
        TEST_SKIP("no readable /sys/devices/system/node");
    unsigned cpu, node;
    CHECK(mallet__numa_getcpu(&cpu, &node));
    CHECK(mallet__numa_topo_node(&t, cpu) == (int)node);
    CHECK(mallet__numa_node_now() == (int)node);
}

TEST(a_range_bound_to_the_current_node_reports_preferred_on_that_node)
{
    unsigned cpu, node;
    CHECK(mallet__numa_getcpu(&cpu, &node));
    size_t page = mallet__os_page_size(), size = 16 * page;
    char *p = mallet__os_map(size, 0);
    CHECK(p != NULL);
    int mode = -1, where = -2;
    if (!mallet__numa_policy(p, &mode, &where) && (errno == ENOSYS || errno == EPERM))
        TEST_SKIP("get_mempolicy refused: a kernel without NUMA, or a seccomp filter");
    CHECK(mode == MALLET_MPOL_DEFAULT && where == -1);
    CHECK(mallet__numa_bind_preferred(p, 8 * page, node));
    memset(p, 1, size);
    CHECK(mallet__numa_policy(p, &mode, &where));
    CHECK(mode == MALLET_MPOL_PREFERRED && where == (int)node);
    CHECK(mallet__numa_policy(p + 7 * page, &mode, &where));
    CHECK(mode == MALLET_MPOL_PREFERRED && where == (int)node);
    // The bound range ends where asked: the page after keeps the default.
    CHECK(mallet__numa_policy(p + 8 * page, &mode, &where));
    CHECK(mode == MALLET_MPOL_DEFAULT);
    errno = 0;
    CHECK(!mallet__numa_bind_preferred(p, page, MALLET_NUMA_NODES_MAX) && errno == EINVAL);
    mallet__os_release(p, size);
}
