// SPDX-License-Identifier: MIT
//
// test_teach_seed.c -- the seed's test table (tests/seed_table.h) run against
// every teach design in teach_allocators[]. One TEST per case of the table;
// each prints a line per design, and a failure names the design it caught.
#include "test.h"
#include "seed_table.h"

// Run the case called `name` from the table against every design.
static void run_case(const char *name)
{
    for (size_t i = 0; i < sizeof seed_table / sizeof seed_table[0]; i++)
        if (strcmp(seed_table[i].name, name) == 0) {
            seed_run_named(name, seed_table[i].fn);
            return;
        }
    CHECK(!"case missing from seed_table");
}

TEST(basic)         { run_case("basic"); }
TEST(alignment)     { run_case("alignment"); }
TEST(boundary)      { run_case("boundary"); }
TEST(large)         { run_case("large"); }
TEST(random)        { run_case("random"); }
TEST(realloc)       { run_case("realloc"); }
TEST(memalign)      { run_case("memalign"); }
TEST(double_free)   { run_case("double_free"); }
TEST(invalid_free)  { run_case("invalid_free"); }
TEST(bad_input)     { run_case("bad_input"); }
TEST(exhausted)     { run_case("exhausted"); }
TEST(reset)         { run_case("reset"); }

TEST(asan_overflow)
{
    if (!seed_asan())
        TEST_SKIP("needs the SAN=address build");
    run_case("asan_overflow");
}
