// SPDX-License-Identifier: MIT
//
// test_lib_purge.c -- memory goes back to the OS: after purge_delay_ms on
// the slow path's clock, from the purger thread when a multithreaded
// process idles, on the next calls of a single-threaded one (which gets no
// thread of ours), and at once on mallet_trim.
#include "test.h"

#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/single_threaded.h>
#include <time.h>

#include "mallet.h"


static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static void **fill(size_t bytes, size_t block)
{
    size_t n = bytes / block;
    void **p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) {
        p[i] = mallet_malloc(block);
        memset(p[i], 1, block);
    }
    return p;
}

static void drain(void **p, size_t bytes, size_t block)
{
    for (size_t i = 0; i < bytes / block; i++)
        mallet_free(p[i]);
    free(p);
}

static uint64_t resident(void)
{
    mallet_stats_t s;
    mallet_stats_get(&s);
    return s.resident;
}

TEST(empty_pages_are_purged_after_the_delay_on_the_slow_path)
{
    mallet_option_set("purger", 0);
    // Long enough that no page emptied by the drain has waited it out when
    // the drain ends, even under AddressSanitizer on a loaded machine.
    mallet_option_set("purge_delay_ms", 300);
    size_t bytes = test_under_valgrind() ? (4u << 20) : (32u << 20);
    void **p = fill(bytes, 64);
    uint64_t peak = resident();
    drain(p, bytes, 64);
    mallet_stats_t s0;
    mallet_stats_get(&s0);
    CHECK(s0.purged == 0);
    // Slow paths on the clock: the first sweep retires the empty pages,
    // a later one purges them once the delay has passed.
    for (int i = 0; i < 8; i++) {
        sleep_ms(100);
        mallet_free(mallet_malloc(2000 + 1000 * (size_t)i));
    }
    mallet_stats_t s;
    mallet_stats_get(&s);
    CHECK(s.purged >= bytes / 2);
    CHECK(s.resident < peak / 4);
}

TEST(nothing_is_purged_before_the_delay)
{
    mallet_option_set("purger", 0);
    mallet_option_set("purge_delay_ms", 60000);
    size_t bytes = 8u << 20;
    void **p = fill(bytes, 256);
    drain(p, bytes, 256);
    for (int i = 0; i < 5; i++)
        mallet_free(mallet_malloc(3000 + 1000 * (size_t)i));
    mallet_stats_t s;
    mallet_stats_get(&s);
    CHECK(s.purged == 0);
}

static void *nothing(void *arg)
{
    return arg;
}

// Entries of /proc/self/task: the process's threads.
static int threads_now(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

TEST(the_purger_thread_shrinks_an_idle_process)
{
    if (test_under_valgrind())
        TEST_SKIP("timing of a background thread under memcheck");
    mallet_option_set("purge_delay_ms", 50);
    mallet_option_set("purger_start_mb", 8);
    // The program starts a thread of its own: only then may the purger run.
    pthread_t t;
    CHECK(pthread_create(&t, NULL, nothing, NULL) == 0);
    pthread_join(t, NULL);
    size_t bytes = 64u << 20;
    void **p = fill(bytes, 48);
    uint64_t peak = resident();
    drain(p, bytes, 48);
    // No allocation from here on: only the purger can give memory back.
    uint64_t now = peak;
    for (int i = 0; i < 40 && now >= peak / 10; i++) {
        sleep_ms(100);
        now = resident();
    }
    CHECK(now < peak / 10);
}

TEST(a_single_threaded_process_shrinks_on_its_next_calls_with_no_thread)
{
    if (test_under_valgrind())
        TEST_SKIP("timing under memcheck");
    // A delay longer than the drain: what the drain's own slow paths can
    // give back is little, the rest waits for calls after it.
    mallet_option_set("purge_delay_ms", 400);
    mallet_option_set("purger_start_mb", 8);
    CHECK(__libc_single_threaded);
    size_t bytes = 64u << 20;
    void **p = fill(bytes, 48);
    uint64_t peak = resident();
    drain(p, bytes, 48);
    uint64_t now = resident();
    CHECK(now > peak / 2);
    // One small malloc and free every 20 ms, each a fast-path pair on its
    // own: the parked heap makes each the clock's look.
    for (int i = 0; i < 150 && now >= peak / 10; i++) {
        sleep_ms(20);
        mallet_free(mallet_malloc(100));
        now = resident();
    }
    CHECK(now < peak / 10);
    CHECK(__libc_single_threaded);
    CHECK(threads_now() == 1);
}

TEST(trim_gives_everything_back_now)
{
    mallet_option_set("purger", 0);
    mallet_option_set("purge_delay_ms", 60000);
    size_t bytes = test_under_valgrind() ? (4u << 20) : (64u << 20);
    void **p = fill(bytes, 100);
    void *big = mallet_malloc(8u << 20);
    mallet_free(big);
    mallet_stats_t a, b;
    mallet_stats_get(&a);
    drain(p, bytes, 100);
    mallet_trim();
    mallet_stats_get(&b);
    CHECK(b.resident < a.resident / 10);
    CHECK(b.mapped < a.mapped / 10);
    CHECK(b.allocated == 0);
}
