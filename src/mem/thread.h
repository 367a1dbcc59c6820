// SPDX-License-Identifier: MIT
//
// thread.h -- threads coming and going: the TLS heap pointer, thread exit,
// abandoned pages and their adoption, their repair in a fork child (the
// fork handler itself is api/fork.c's).
#ifndef MALLET_THREAD_H
#define MALLET_THREAD_H

#include <stdbool.h>

#include "heap.h"

extern mallet_lock_t mallet__abandoned_lock;

// Create the thread-exit key (start-up; allocates nothing).
void mallet__thread_init(void);
// Arrange for heap to be abandoned when the calling thread exits.
void mallet__thread_attach(mallet_heap_t *heap);
// Put a page with live blocks on the abandoned list of its class.
void mallet__thread_abandon_page(mallet_page_t *page);
// An abandoned page of class c, now owned by heap and its other threads'
// frees collected (not on any of heap's lists yet), or NULL.
mallet_page_t *mallet__thread_adopt(mallet_heap_t *heap, unsigned c);
// Collect abandoned pages and retire the ones left empty.
void mallet__thread_sweep_abandoned(void);
// Check the free blocks of every abandoned page (mallet__page_check).
uint64_t mallet__thread_check_abandoned(const char *func);
// Set once the thread's heap is abandoned at its exit.
extern __thread uint8_t mallet__tls_exited __attribute__((tls_model("initial-exec")));
// An allocation of a thread whose heap is abandoned already (a destructor
// that runs after libmallet's): from the heap exiting threads share.
void *mallet__thread_exiting_alloc(size_t req, int cls);
// Blocks on the free lists of that heap's current pages, and their bytes
// added to *bytes (the statistics count them as not in use).
uint64_t mallet__thread_exiting_listed(uint64_t *bytes);
// In a fork child: the abandoned lists and the exiting threads' heap, when
// a thread that did not come along was changing them, are given up.
void mallet__thread_after_fork(void);
// After a slow path, no lock held: start the purger thread when the
// process has grown.
void mallet__thread_after_slow(void);

#endif
