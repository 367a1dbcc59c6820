// SPDX-License-Identifier: MIT
//
// test_hugepages.c -- the kernel grants a transparent huge page to an
// aligned, advised 2 MiB range, and purging a piece of it breaks it up
// (why libmallet purges whole 2 MiB units when hugepages=1). Plus the
// readers of the THP mode and of AnonHugePages.
#include "test.h"
#include "os/huge.h"
#include "need_thp.h"
#include "os/os.h"
#include "os/sysfs.h"

#include <stdint.h>

// The mode as this test reads it itself, with stdio.
static const char *mode_word(void)
{
    static char line[256];
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f == NULL)
        return NULL;
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    if (ok == NULL)
        return NULL;
    char *open = strchr(line, '['), *close = open ? strchr(open, ']') : NULL;
    if (close == NULL)
        return NULL;
    *close = 0;
    return open + 1;
}

// A 2 MiB-aligned range of `huge` huge-page sizes, advised or not, touched
// one byte per 4 KiB page.
static char *touched(size_t huge, bool advise)
{
    size_t size = huge * MALLET_HUGE_SIZE;
    char *p = mallet__os_map(size, MALLET_HUGE_SIZE);
    if (p == NULL)
        return NULL;
    if (advise && !mallet__os_advise_huge(p, size, true))
        return NULL;
    for (size_t off = 0; off < size; off += 4096)
        p[off] = 1;
    return p;
}

TEST(mode_reader_matches_the_file)
{
    const char *w = mode_word();
    if (w == NULL)
        TEST_SKIP("no /sys/kernel/mm/transparent_hugepage/enabled");
    mallet_thp_mode_t m = mallet__os_thp_mode();
    CHECK(strcmp(w, "always") != 0 || m == MALLET_THP_ALWAYS);
    CHECK(strcmp(w, "madvise") != 0 || m == MALLET_THP_MADVISE);
    CHECK(strcmp(w, "never") != 0 || m == MALLET_THP_NEVER);
    CHECK(m != MALLET_THP_UNKNOWN);
}

TEST(field_reader_finds_the_line_and_only_it)
{
    const char *text = "Rss:   1234 kB\nAnonHugePagesX: 9 kB\nAnonHugePages:\t  4096 kB\nShmem: 1 kB\n";
    CHECK(mallet__sysfs_field_kb(text, "AnonHugePages") == 4096);
    CHECK(mallet__sysfs_field_kb(text, "Rss") == 1234);
    CHECK(mallet__sysfs_field_kb(text, "Shmem") == 1);
    CHECK(mallet__sysfs_field_kb(text, "Pss") == -1);
    CHECK(mallet__sysfs_field_kb("Rss: none\n", "Rss") == -1);
    char small[8];
    CHECK(mallet__sysfs_read("/proc/self/smaps_rollup", small, sizeof small) == 7);
    CHECK(strlen(small) == 7);
    CHECK(mallet__sysfs_read("/nonexistent/mallet", small, sizeof small) == -1);
}

TEST(an_advised_aligned_range_gets_huge_pages)
{
    need_thp();
    long before = mallet__os_anon_huge_kb();
    char *p = touched(4, true);
    CHECK(p != NULL);
    long after = mallet__os_anon_huge_kb();
    CHECK(after >= before + 2048);
    // The rest needs every unit on a huge page; a kernel short of free 2 MiB
    // blocks this moment backs some with 4 KiB pages instead.
    if (after < before + 4 * 2048) {
        fprintf(stderr, "  AnonHugePages grew by %ld kB of 8192\n", after - before);
        if (test_failures == 0)
            TEST_SKIP("the kernel backed only some of the four units with huge pages just now");
    }
    // Purging one 4 KiB page splits the huge page that holds it.
    CHECK(mallet__os_purge(p + MALLET_HUGE_SIZE, 4096));
    CHECK(mallet__os_anon_huge_kb() <= after - 2048);
    CHECK(p[MALLET_HUGE_SIZE] == 0 && p[MALLET_HUGE_SIZE + 4096] == 1);
    // Purging a whole aligned unit gives its memory back and leaves the
    // other huge pages whole.
    long mid = mallet__os_anon_huge_kb();
    CHECK(mallet__os_purge(p + 2 * MALLET_HUGE_SIZE, MALLET_HUGE_SIZE));
    long last = mallet__os_anon_huge_kb();
    CHECK(last <= mid && last >= mid - 2048);
    mallet__os_release(p, 4 * MALLET_HUGE_SIZE);
}

TEST(without_advice_madvise_mode_gives_none)
{
    need_thp();
    if (mallet__os_thp_mode() != MALLET_THP_MADVISE)
        TEST_SKIP("the THP mode is not [madvise]: unadvised memory may get huge pages");
    long before = mallet__os_anon_huge_kb();
    char *p = touched(2, false);
    CHECK(p != NULL);
    CHECK(mallet__os_anon_huge_kb() == before);
    mallet__os_release(p, 2 * MALLET_HUGE_SIZE);
}
