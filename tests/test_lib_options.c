// SPDX-License-Identifier: MIT
//
// test_lib_options.c -- options come from MALLET_* in the environment at
// start-up and through mallet_option_set/get; the statistics summary and
// mallet_stats_get report the same numbers.
#include "test.h"

#include <stdint.h>

#include "mallet.h"
#include "base/base.h"

TEST(options_are_read_from_the_environment_at_start)
{
    // Each test runs in a fresh process: nothing has started libmallet yet.
    setenv("MALLET_PURGE_DELAY_MS", "1234", 1);
    setenv("MALLET_LARGE_CACHE_COUNT", "-5x", 1);      // not a number: ignored
    setenv("MALLET_STATSX", "1", 1);                   // not an option's name
    CHECK(mallet_option_get("purge_delay_ms") == 1234);
    CHECK(mallet_option_get("large_cache_count") == 64);
    CHECK(mallet_option_get("stats") == 0);
    CHECK(mallet_option_get("nonsense") == -1);
}

TEST(every_option_can_be_set_and_read_back)
{
#define SET_GET(name, def, meaning)                        \
    CHECK(mallet_option_get(#name) == (def));              \
    CHECK(mallet_option_set(#name, (def) + 1));            \
    CHECK(mallet_option_get(#name) == (def) + 1);          \
    CHECK(mallet_option_set(#name, (def)));
    MALLET_OPTION_LIST(SET_GET)
#undef SET_GET
    CHECK(!mallet_option_set("nonsense", 1));
}

TEST(the_printed_summary_matches_the_counters)
{
    void *p[100];
    for (int i = 0; i < 100; i++)
        p[i] = mallet_malloc(100);
    for (int i = 0; i < 50; i++)
        mallet_free(p[i]);
    mallet_stats_t s;
    mallet_stats_get(&s);
    CHECK(s.malloc_calls == 100);
    CHECK(s.free_calls == 50);
    CHECK(s.allocated == 50 * 112);
    CHECK(s.threads == 1);
    int fds[2];
    CHECK(pipe(fds) == 0);
    mallet_stats_print(fds[1]);
    close(fds[1]);
    char out[8192];
    ssize_t n = read(fds[0], out, sizeof out - 1);
    close(fds[0]);
    CHECK(n > 0);
    out[n > 0 ? n : 0] = 0;
    char want[64];
    snprintf(want, sizeof want, "allocated%*u", 36 - 9, 5600u);
    CHECK(strstr(out, "mallet: statistics") != NULL);
    CHECK(strstr(out, want) != NULL);
    CHECK(strstr(out, "malloc_calls") && strstr(out, "pages_allocated"));
    for (int i = 50; i < 100; i++)
        mallet_free(p[i]);
}
