// SPDX-License-Identifier: MIT
//
// test_lib_numa.c -- libmallet with numa=1: a thread heap's memory carries
// an MPOL_PREFERRED policy for the node of the CPU the thread runs on, read
// back from the kernel with get_mempolicy(MPOL_F_ADDR); so does a large
// block, new or reused from the cache; with numa=0 both keep the default
// policy. (Which node each CPU maps to, on a fake two-node tree,
// is tested in test_numa.c: binding to a node this machine lacks fails.)
#include "test.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include "mallet.h"
#include "os/huge.h"
#include "os/numa.h"

// These tests check the memory policy of the pages blocks are placed on: a guarded block (src/secure/guard.h), placed alone
// between inaccessible pages, is none of that, so the guard is off.
__attribute__((constructor)) static void guard_off(void)
{
    setenv("MALLET_GUARD", "0", 1);     // read at start-up, which comes later
}


// Skip when this process cannot ask the kernel for a policy at all.
static void need_mempolicy(void)
{
    int mode, node;
    static char probe[4096] __attribute__((aligned(4096)));
    probe[0] = 1;
    if (!mallet__numa_policy(probe, &mode, &node))
        TEST_SKIP("get_mempolicy is not available here");
}

static void check_preferred_here(const char *p)
{
    unsigned cpu, node;
    int mode = -1, where = -2;
    CHECK(mallet__numa_getcpu(&cpu, &node));
    CHECK(mallet__numa_policy((void *)p, &mode, &where));
    CHECK(mode == MALLET_MPOL_PREFERRED);
    CHECK(where == (int)node);
}

TEST(with_numa_a_heap_address_prefers_the_current_node)
{
    need_mempolicy();
    CHECK(mallet_option_set("numa", 1));
    CHECK(mallet_option_get("numa") == 1);
    char *small = mallet_malloc(48);
    char *medium = mallet_malloc(20000);
    CHECK(small && medium);
    memset(small, 1, 48);
    check_preferred_here(small);
    check_preferred_here(medium);
    mallet_free(small);
    mallet_free(medium);
}

static void *thread_alloc(void *arg)
{
    (void)arg;
    char *p = mallet_malloc(100);
    if (p)
        memset(p, 2, 100);
    return p;
}

TEST(each_threads_heap_gets_the_policy_page_by_page)
{
    need_mempolicy();
    // A segment made with numa=0 keeps the default policy; the threads'
    // pages then come from it, so each must be bound on its own.
    char *before = mallet_malloc(100);
    CHECK(before != NULL);
    mallet_option_set("numa", 1);
    for (int i = 0; i < 3; i++) {
        pthread_t th;
        void *p = NULL;
        CHECK(pthread_create(&th, NULL, thread_alloc, NULL) == 0);
        CHECK(pthread_join(th, &p) == 0);
        CHECK(p != NULL);
        CHECK(((uintptr_t)p >> 22) == ((uintptr_t)before >> 22));
        check_preferred_here(p);
        mallet_free(p);
    }
    int mode = -1, where = -2;
    CHECK(mallet__numa_policy(before, &mode, &where));
    CHECK(mode == MALLET_MPOL_DEFAULT);
    mallet_free(before);
}

TEST(without_numa_the_policy_stays_default)
{
    need_mempolicy();
    CHECK(mallet_option_get("numa") == 0);
    char *p = mallet_malloc(64);
    CHECK(p != NULL);
    int mode = -1, where = -2;
    CHECK(mallet__numa_policy(p, &mode, &where));
    CHECK(mode == MALLET_MPOL_DEFAULT);
    mallet_free(p);
}

TEST(with_numa_and_hugepages_the_whole_2mib_unit_shares_one_policy)
{
    need_mempolicy();
    mallet_option_set("hugepages", 1);
    char *first = mallet_malloc(64);
    CHECK(first != NULL);
    mallet_option_set("numa", 1);
    // Fill on until a block lands in another 2 MiB unit: that unit was
    // empty, so its first page bound all of it -- one policy over the whole
    // aligned unit, since a boundary inside it would split the mapping and
    // forbid the huge page.
    enum { MAX = 40000 };
    static char *p[MAX];
    uintptr_t first_unit = (uintptr_t)first >> MALLET_HUGE_SHIFT;
    int n = 0;
    do
        p[n] = mallet_malloc(64);
    while (p[n] && ((uintptr_t)p[n++] >> MALLET_HUGE_SHIFT) == first_unit && n < MAX);
    CHECK(n < MAX && p[n - 1] != NULL);
    char *unit = (char *)(((uintptr_t)p[n - 1] >> MALLET_HUGE_SHIFT) << MALLET_HUGE_SHIFT);
    check_preferred_here(unit);
    check_preferred_here(unit + MALLET_HUGE_SIZE - 4096);
    // The unit in use before numa was set keeps the default policy.
    int mode = -1, where = -2;
    CHECK(mallet__numa_policy(first, &mode, &where));
    CHECK(mode == MALLET_MPOL_DEFAULT);
    while (n > 0)
        mallet_free(p[--n]);
    mallet_free(first);
}

TEST(mallet_numa_in_the_environment_turns_it_on)
{
    need_mempolicy();
    // Each test runs in a fresh process: libmallet has not started yet.
    setenv("MALLET_NUMA", "1", 1);
    char *p = mallet_malloc(32);
    CHECK(p != NULL);
    CHECK(mallet_option_get("numa") == 1);
    check_preferred_here(p);
    mallet_free(p);
}

TEST(with_numa_a_large_block_prefers_the_current_node)
{
    need_mempolicy();
    enum { LARGE = 64 << 20 };
    CHECK(mallet_option_set("numa", 1));
    char *p = mallet_malloc(LARGE);
    CHECK(p != NULL);
    check_preferred_here(p);
    check_preferred_here(p + LARGE - 4096);
    memset(p, 4, 4096);
    check_preferred_here(p);
    // Freed into the cache and handed out again: bound again, on the node
    // of the thread that takes it now.
    mallet_free(p);
    char *q = mallet_malloc(LARGE - 8192);
    CHECK(q != NULL);
    check_preferred_here(q);
    mallet_free(q);
}

TEST(without_numa_a_large_block_keeps_the_default_policy)
{
    need_mempolicy();
    CHECK(mallet_option_get("numa") == 0);
    char *p = mallet_malloc(64 << 20);
    CHECK(p != NULL);
    int mode = -1, where = -2;
    CHECK(mallet__numa_policy(p, &mode, &where));
    CHECK(mode == MALLET_MPOL_DEFAULT);
    mallet_free(p);
}
