// SPDX-License-Identifier: MIT
//
// size_class.c -- the class table: block size, page length, direct slots.
//
// A page's length is chosen per class to leave the smallest unused tail:
// among the lengths that hold at least eight blocks (or one page of
// MALLET_PAGE_UNITS_MAX units) up to twice that, the one whose tail is the
// smallest fraction of the page wins, the shorter on a tie. Shorter pages
// return to the OS sooner, longer pages waste less at their end.
#include "size_class.h"

mallet_class_t mallet__classes[MALLET_CLASSES];

void mallet__size_class_init(void)
{
    if (mallet__classes[0].size != 0)
        return;
    for (unsigned c = 0; c < MALLET_CLASSES; c++) {
        size_t size = mallet__class_size(c);
        size_t want = 8 * size;
        if (want > MALLET_PAGE_UNITS_MAX * MALLET_UNIT_SIZE)
            want = MALLET_PAGE_UNITS_MAX * MALLET_UNIT_SIZE;
        size_t lo = (want + MALLET_UNIT_SIZE - 1) / MALLET_UNIT_SIZE;
        size_t hi = 2 * lo > MALLET_PAGE_UNITS_MAX ? MALLET_PAGE_UNITS_MAX : 2 * lo;
        if (hi < lo)
            hi = lo;
        size_t best = lo;
        double best_waste = 2.0;
        for (size_t n = lo; n <= hi; n++) {
            size_t bytes = n * MALLET_UNIT_SIZE;
            double waste = (double)(bytes % size) / (double)bytes;
            if (waste < best_waste - 1e-12) {
                best_waste = waste;
                best = n;
            }
        }
        mallet__classes[c].size = (uint32_t)size;
        mallet__classes[c].units = (uint8_t)best;
        mallet__classes[c].blocks = (uint32_t)(best * MALLET_UNIT_SIZE / size);
        mallet__classes[c].direct_lo = 1;
        mallet__classes[c].direct_hi = 0;
    }
    for (unsigned i = 0; i < MALLET_DIRECT_SLOTS; i++) {
        mallet_class_t *k = &mallet__classes[mallet__size_class((size_t)i << MALLET_GRAIN_SHIFT)];
        if (k->direct_lo > k->direct_hi)
            k->direct_lo = (uint8_t)i;
        k->direct_hi = (uint8_t)i;
    }
}
