// SPDX-License-Identifier: MIT
//
// test_lib_hugepages.c -- libmallet with hugepages=1: small blocks come
// from segments advised MADV_HUGEPAGE, so AnonHugePages grows with them;
// trim gives memory back in whole 2 MiB units only, so a unit that still
// holds one live block keeps its huge page, and an empty unit goes back
// entire. A large block starts on a 2 MiB boundary and its mapping is
// advised (the `hg` flag of /proc/self/smaps), new or reused, and sits on
// huge pages once touched. Each test's control is the same work with
// hugepages=0.
#include "test.h"

#include <stdint.h>
#include <stdio.h>

#include "mallet.h"
#include "os/huge.h"
#include "need_thp.h"

// These tests check where blocks are placed and how they are advised: a guarded block (src/secure/guard.h), placed alone
// between inaccessible pages, is none of that, so the guard is off.
__attribute__((constructor)) static void guard_off(void)
{
    setenv("MALLET_GUARD", "0", 1);     // read at start-up, which comes later
}



enum { BLOCK = 64 };

static size_t total_bytes(void)
{
    return test_under_valgrind() ? (size_t)16 << 20 : (size_t)64 << 20;
}

// Allocate and touch `bytes` of BLOCK-byte blocks; the pointer array comes
// from libc's malloc, so it is not counted.
static char **fill(size_t bytes, size_t *count)
{
    size_t n = bytes / BLOCK;
    char **p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        p[i] = mallet_malloc(BLOCK);
        memset(p[i], 3, BLOCK);
    }
    *count = n;
    return p;
}

static uint64_t purged(void)
{
    mallet_stats_t s;
    mallet_stats_get(&s);
    return s.purged;
}

static void setup(int huge)
{
    mallet_option_set("purger", 0);
    mallet_option_set("hugepages", huge);
}

TEST(small_blocks_sit_on_huge_pages)
{
    need_thp();
    setup(1);
    long before = mallet__os_anon_huge_kb();
    size_t n;
    char **p = fill(total_bytes(), &n);
    long grown = mallet__os_anon_huge_kb() - before;
    // Most of the memory is on huge pages: allow a few units the kernel
    // could not find a free huge page for.
    CHECK(grown >= (long)(total_bytes() >> 10) * 3 / 4);
    for (size_t i = 0; i < n; i++)
        mallet_free(p[i]);
    free(p);
}

TEST(control_without_the_option_madvise_mode_gives_no_huge_pages)
{
    need_thp();
    if (mallet__os_thp_mode() != MALLET_THP_MADVISE)
        TEST_SKIP("the THP mode is not [madvise]: unadvised memory may get huge pages");
    setup(0);
    long before = mallet__os_anon_huge_kb();
    size_t n;
    char **p = fill(total_bytes(), &n);
    CHECK(mallet__os_anon_huge_kb() == before);
    for (size_t i = 0; i < n; i++)
        mallet_free(p[i]);
    free(p);
}

// Free every block but those of `keep` (one block in each 2 MiB unit the
// predicate picks), then trim.
static void free_all_but(char **p, size_t n, bool (*keep_unit)(uintptr_t unit), char **kept, size_t *nkept)
{
    uintptr_t last_kept = 0;
    *nkept = 0;
    for (size_t i = 0; i < n; i++) {
        uintptr_t unit = (uintptr_t)p[i] >> MALLET_HUGE_SHIFT;
        if (keep_unit(unit) && unit != last_kept) {
            bool seen = false;
            for (size_t k = 0; k < *nkept && !seen; k++)
                seen = (uintptr_t)kept[k] >> MALLET_HUGE_SHIFT == unit;
            if (!seen) {
                kept[(*nkept)++] = p[i];
                last_kept = unit;
                continue;
            }
        }
        mallet_free(p[i]);
    }
}

static bool every_unit(uintptr_t unit)
{
    (void)unit;
    return true;
}

// The first unit of each 4 MiB segment: the one holding its metadata.
static bool first_unit(uintptr_t unit)
{
    return (unit & 1) == 0;
}

TEST(a_unit_with_one_live_block_keeps_its_huge_page_through_trim)
{
    need_thp();
    setup(1);
    size_t n, nkept;
    char **p = fill(total_bytes(), &n);
    char *kept[1024];
    free_all_but(p, n, every_unit, kept, &nkept);
    CHECK(nkept >= total_bytes() / MALLET_HUGE_SIZE);
    long huge = mallet__os_anon_huge_kb();
    uint64_t before = purged();
    mallet_trim();
    // Nothing to give back: every unit holds a block, and no unit is cut.
    CHECK(purged() == before);
    CHECK(mallet__os_anon_huge_kb() == huge);
    for (size_t k = 0; k < nkept; k++)
        mallet_free(kept[k]);
    free(p);
}

TEST(control_without_the_option_trim_purges_around_live_blocks)
{
    setup(0);
    size_t n, nkept;
    char **p = fill(total_bytes(), &n);
    char *kept[1024];
    free_all_but(p, n, every_unit, kept, &nkept);
    uint64_t before = purged();
    mallet_trim();
    CHECK(purged() - before >= total_bytes() / 2);
    for (size_t k = 0; k < nkept; k++)
        mallet_free(kept[k]);
    free(p);
}

TEST(trim_releases_empty_units_whole_and_leaves_the_others)
{
    need_thp();
    setup(1);
    size_t n, nkept;
    char **p = fill(total_bytes(), &n);
    char *kept[1024];
    // Keep a block in the first unit of each segment; the second units empty.
    free_all_but(p, n, first_unit, kept, &nkept);
    CHECK(nkept > 0);
    long huge = mallet__os_anon_huge_kb();
    uint64_t before = purged();
    mallet_trim();
    uint64_t given = purged() - before;
    long huge_after = mallet__os_anon_huge_kb();
    CHECK(given > 0);
    CHECK(given % MALLET_HUGE_SIZE == 0);
    // What went back was huge pages, whole; no other huge page was cut.
    CHECK(huge_after <= huge - (long)(given >> 10) / 2);
    CHECK(huge_after >= huge - (long)(given >> 10));
    for (size_t k = 0; k < nkept; k++)
        CHECK(kept[k][0] == 3 && kept[k][BLOCK - 1] == 3);
    for (size_t k = 0; k < nkept; k++)
        mallet_free(kept[k]);
    mallet_trim();
    mallet_stats_t s;
    mallet_stats_get(&s);
    CHECK(s.resident < ((uint64_t)4 << 20));
    free(p);
}

static unsigned unit_of(const void *p)
{
    return (unsigned)(((uintptr_t)p & (((uintptr_t)4 << 20) - 1)) >> 16);
}

TEST(a_new_page_goes_to_the_fullest_2mib_unit)
{
    setup(1);
    // Fill one 4 MiB segment: 64 KiB units 1..63 (unit 0 is metadata).
    enum { MAX = 80000 };
    static char *p[MAX];
    int n = 0;
    p[n++] = mallet_malloc(BLOCK);
    uintptr_t seg = (uintptr_t)p[0] >> 22;
    while (n < MAX && (p[n] = mallet_malloc(BLOCK)) != NULL && (uintptr_t)p[n] >> 22 == seg)
        n++;
    CHECK(n < MAX && p[n] != NULL);
    mallet_free(p[n]);
    // Empty units 2..31 of the first 2 MiB (sparse now: unit 1 alone in
    // use) and unit 40 of the second (dense: 31 of 32 units in use).
    for (int i = 0; i < n; i++) {
        unsigned u = unit_of(p[i]);
        if ((u >= 2 && u < 32) || u == 40) {
            mallet_free(p[i]);
            p[i] = NULL;
        }
    }
    mallet_trim();
    // First fit would take unit 2; the densest unit's hole is unit 40.
    char *q = mallet_malloc(BLOCK);
    CHECK(q != NULL && (uintptr_t)q >> 22 == seg);
    CHECK(unit_of(q) == 40);
    mallet_free(q);
    for (int i = 0; i < n; i++)
        mallet_free(p[i]);
}

TEST(mallet_hugepages_in_the_environment_turns_it_on)
{
    need_thp();
    // Each test runs in a fresh process: libmallet has not started yet.
    setenv("MALLET_HUGEPAGES", "1", 1);
    setenv("MALLET_PURGER", "0", 1);
    CHECK(mallet_option_get("hugepages") == 1);
    long before = mallet__os_anon_huge_kb();
    size_t n;
    char **p = fill((size_t)8 << 20, &n);
    CHECK(mallet__os_anon_huge_kb() - before >= 4096);
    for (size_t i = 0; i < n; i++)
        mallet_free(p[i]);
    free(p);
}

// --- large blocks -------------------------------------------------------------

enum { LARGE = 64 << 20 };

// Whether the mapping holding p is advised MADV_HUGEPAGE: its VmFlags in
// /proc/self/smaps carry `hg`. -1 when p's mapping is not found.
static int advised_huge(const void *p)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[512];
    int found = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {   // a mapping's first line
            if (found >= 0)
                break;
            if ((uintptr_t)p >= lo && (uintptr_t)p < hi)
                found = 0;
        } else if (found == 0 && !strncmp(line, "VmFlags:", 8)) {
            found = strstr(line, " hg") != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

TEST(a_large_block_is_2mib_aligned_and_advised)
{
    setup(1);
    char *p = mallet_malloc(LARGE);
    CHECK(p != NULL);
    CHECK((uintptr_t)p % MALLET_HUGE_SIZE == 0);
    CHECK(advised_huge(p) == 1);
    CHECK(advised_huge(p + LARGE - 1) == 1);
    // Reused from the cache of freed ranges: advised again.
    mallet_free(p);
    char *q = mallet_malloc(LARGE - 4096);
    CHECK(q != NULL);
    CHECK(advised_huge(q) == 1);
    mallet_free(q);
}

TEST(control_without_the_option_a_large_block_is_not_advised)
{
    setup(0);
    char *p = mallet_malloc(LARGE);
    CHECK(p != NULL);
    CHECK(advised_huge(p) == 0);
    mallet_free(p);
}

TEST(a_large_block_sits_on_huge_pages_once_touched)
{
    need_thp();
    setup(1);
    size_t size = test_under_valgrind() ? (size_t)16 << 20 : LARGE;
    long before = mallet__os_anon_huge_kb();
    char *p = mallet_malloc(size);
    CHECK(p != NULL);
    memset(p, 5, size);
    // Allow a few huge pages the kernel could not find memory for.
    CHECK(mallet__os_anon_huge_kb() - before >= (long)(size >> 10) * 3 / 4);
    mallet_free(p);
}
