// SPDX-License-Identifier: MIT
//
// zero.h -- malloc(0) in the secure build (zero.c): unique addresses in an
// inaccessible region. The default build serves malloc(0) with a 16-byte
// block and compiles none of this.
#ifndef MALLET_ZERO_H
#define MALLET_ZERO_H

#include <stdbool.h>

#include "mem/mem.h"

#if MALLET_SECURE
// A fresh zero-size block, or NULL when the region is full or could not be
// made (the caller then hands out an ordinary block).
void *mallet__zero_alloc(void);
// Is p in the region (a zero-size block, live or not, or a stray address)?
bool mallet__zero_owns(const void *p);
// Free p if it is in the region: false when it is not. A double free, or an
// address never handed out, is reported in func's name.
bool mallet__zero_free(void *p, const char *func);
// Is p a live zero-size block?
bool mallet__zero_live(const void *p);
// In a fork child: the lock taken over (thread.c, fork).
void mallet__zero_after_fork(void);
#endif

#endif
