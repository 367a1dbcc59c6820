// SPDX-License-Identifier: MIT
//
// test_lib_size_class.c -- the class table: monotonic, 16-byte multiples,
// bounded waste, pages with small tails, direct slots that agree with the
// class function.
#include "test.h"

#include "mem/mem.h"

TEST(classes_grow_and_are_16_byte_multiples)
{
    mallet__size_class_init();
    for (unsigned c = 0; c < MALLET_CLASSES; c++) {
        CHECK(mallet__classes[c].size % 16 == 0);
        CHECK(mallet__classes[c].size == mallet__class_size(c));
        if (c > 0)
            CHECK(mallet__classes[c].size > mallet__classes[c - 1].size);
    }
    CHECK(mallet__classes[MALLET_CLASSES - 1].size == MALLET_SMALL_MAX);
}

TEST(every_size_maps_to_the_smallest_class_that_holds_it)
{
    mallet__size_class_init();
    for (size_t n = 0; n <= MALLET_SMALL_MAX; n += (n < 4096 ? 1 : 13)) {
        unsigned c = mallet__size_class(n);
        CHECK(c < MALLET_CLASSES);
        CHECK(mallet__class_size(c) >= n);
        if (c > 0)
            CHECK(mallet__class_size(c - 1) < n);
    }
}

TEST(waste_above_128_bytes_is_at_most_a_fifth_of_a_block)
{
    mallet__size_class_init();
    for (unsigned c = 8; c < MALLET_CLASSES; c++) {
        size_t smallest = mallet__class_size(c - 1) + 1;
        size_t size = mallet__class_size(c);
        CHECK((double)(size - smallest) / (double)size <= 0.20);
    }
}

TEST(pages_hold_blocks_and_leave_small_tails)
{
    mallet__size_class_init();
    for (unsigned c = 0; c < MALLET_CLASSES; c++) {
        const mallet_class_t *k = &mallet__classes[c];
        size_t bytes = (size_t)k->units * MALLET_UNIT_SIZE;
        CHECK(k->units >= 1 && k->units <= MALLET_PAGE_UNITS_MAX);
        CHECK(k->blocks >= 1);
        CHECK(k->blocks == bytes / k->size);
        // The tail is below one block, and below 1/8 of the page.
        CHECK(bytes - (size_t)k->blocks * k->size < k->size);
        CHECK((bytes - (size_t)k->blocks * k->size) * 8 <= bytes);
    }
}

TEST(direct_slots_agree_with_the_class_function)
{
    mallet__size_class_init();
    for (unsigned i = 0; i < MALLET_DIRECT_SLOTS; i++) {
        unsigned c = mallet__size_class((size_t)i * 16);
        CHECK(mallet__classes[c].direct_lo <= i && i <= mallet__classes[c].direct_hi);
        // Every size that rounds to slot i lands in the same class.
        if (i > 0)
            CHECK(mallet__size_class((size_t)i * 16 - 15) == c);
    }
}
