// SPDX-License-Identifier: MIT
//
// purge.h -- giving memory back: the background purger thread and trim.
#ifndef MALLET_PURGE_H
#define MALLET_PURGE_H

#include <stddef.h>

// Start the purger thread if the process has grown past purger_start_mb
// and it is not running yet. Slow paths only, with no lock held.
void mallet__purge_maybe_start(void);
// In a fork child: the purger thread did not come along.
void mallet__purge_forget_thread(void);
// Retire every empty page of every heap and give all free memory back now.
// Returns the bytes given back.
size_t mallet__purge_all(void);

#endif
