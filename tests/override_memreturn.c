// SPDX-License-Identifier: MIT
//
// override_memreturn.c -- freed memory goes back to the OS: a gigabyte in
// small blocks, all freed, then the resident set falls below a tenth of its
// peak, at once after malloc_trim(0), and (libmallet only) by itself within
// seconds of the process going quiet. RSS is read from /proc/self/statm.
//
// These are correctness deadlines, not timings. Memcheck's own footprint
// hides the process's, so they skip under valgrind.
#include "override_common.h"

#include <time.h>

// Blocks of 16..128 bytes, chained through their first word, so the list
// costs no memory of its own. Returns the head; *rss_peak gets the RSS.
static void **fill_gigabyte(size_t *rss_peak)
{
    void **head = NULL;
    size_t total = 0;
    uint64_t seed = 99;
    while (total < (1ull << 30)) {
        size_t n = 16 + (size_t)(test_rand(&seed) % 113);
        void **b = malloc(n);
        if (!b)
            break;
        b[0] = head;
        ((unsigned char *)b)[n - 1] = 1;
        head = b;
        total += n;
    }
    *rss_peak = test_rss();
    return head;
}

static size_t free_all(void **head)
{
    size_t count = 0;
    while (head) {
        void **next = head[0];
        free(head);
        head = next;
        count++;
    }
    return count;
}

TEST(rss_falls_below_a_tenth_after_malloc_trim)
{
    if (test_under_valgrind())
        TEST_SKIP("RSS under memcheck is memcheck's");
    size_t before = test_rss(), peak = 0;
    void **head = fill_gigabyte(&peak);
    CHECK(head != NULL);
    CHECK(peak > before + (1ull << 30));
    CHECK(free_all(head) > 8000000);
    malloc_trim(0);
    size_t after = test_rss();
    fprintf(stderr, "  rss: before %zu MiB, peak %zu MiB, after trim %zu MiB\n",
            before >> 20, peak >> 20, after >> 20);
    CHECK(after < peak / 10);
    // The allocator is whole after giving it all back.
    head = fill_gigabyte(&peak);
    CHECK(free_all(head) > 8000000);
}

TEST(rss_falls_below_a_tenth_on_its_own_when_idle)
{
    if (test_under_valgrind())
        TEST_SKIP("RSS under memcheck is memcheck's");
    if (!test_on_mallet())
        TEST_SKIP("glibc keeps freed memory until malloc_trim");
    size_t peak = 0;
    void **head = fill_gigabyte(&peak);
    free_all(head);
    // Poll every 100 ms for up to 5 s; the process does nothing else. It
    // has one thread, so libmallet starts none: the polls' own calls (fopen
    // allocates) are where the delay's clock is read and memory goes back.
    size_t rss = test_rss();
    int polls = 0;
    while (rss >= peak / 10 && polls < 50) {
        nanosleep(&(struct timespec){ .tv_nsec = 100 * 1000 * 1000 }, NULL);
        rss = test_rss();
        polls++;
    }
    fprintf(stderr, "  rss: peak %zu MiB, %zu MiB after %d ms idle\n",
            peak >> 20, rss >> 20, polls * 100);
    CHECK(rss < peak / 10);
}
