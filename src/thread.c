// SPDX-License-Identifier: MIT
//
// thread.c -- the TLS heap pointer, thread exit, abandoned pages, fork.
//
// Thread exit: a pthread key's destructor abandons the heap. Its empty
// pages go back to their segments; the others are put on a global list per
// class with owner 0, where other threads' frees keep landing on thread_free
// as before. A thread that needs a page of that class adopts one (it
// becomes the owner and collects those frees); the purger retires the ones
// that become empty with nobody adopting them.
//
// Fork: one pthread_atfork registration, made lazily by the first slow path
// after start-up, before it takes any lock (it may allocate, so never from a
// constructor, never during start-up, never under a lock). The
// prepare handler takes every lock in the global order of lock.h --
// heaps_lock, every heap's lock in list order, abandoned_lock, seg_lock,
// large_lock -- so no other thread is inside the allocator's shared state
// when the process is copied. The parent releases them in reverse; the
// child resets them and forgets the heaps of the threads that did not come
// along (a fast path may have been cut in half there, see fork_child).
#include "thread.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include "init.h"
#include "large.h"
#include "purge.h"
#include "zero.h"

__thread mallet_heap_t *mallet__tls_heap __attribute__((tls_model("initial-exec"))) = &mallet__heap_empty;

mallet_lock_t mallet__abandoned_lock;
static mallet_page_list_t abandoned[MALLET_CLASSES];   // ownerless pages per class
static pthread_key_t exit_key;
static bool exit_key_ok;                                // exit_key was created
int mallet__fork_state;                                 // see init.h
static __thread uint8_t fork_registering __attribute__((tls_model("initial-exec")));

static void thread_exit(void *value)
{
    mallet_heap_t *heap = value;
    if (heap == NULL || heap == &mallet__heap_empty)
        return;
    mallet__tls_heap = &mallet__heap_empty;
    mallet__heap_abandon(heap);
    mallet__lock(&mallet__heaps_lock);
    mallet__heap_release_locked(heap);
    mallet__unlock(&mallet__heaps_lock);
}

void mallet__thread_init(void)
{
    exit_key_ok = pthread_key_create(&exit_key, thread_exit) == 0;
}

void mallet__thread_attach(mallet_heap_t *heap)
{
    if (exit_key_ok)
        pthread_setspecific(exit_key, heap);
}

void mallet__thread_abandon_page(mallet_page_t *page)
{
    mallet__lock(&mallet__abandoned_lock);
    page->where = MALLET_PAGE_ABANDONED;
    __atomic_store_n(&page->heap, 0, __ATOMIC_RELEASE);
    mallet__page_list_push(&abandoned[page->cls], page);
    mallet__unlock(&mallet__abandoned_lock);
}

mallet_page_t *mallet__thread_adopt(mallet_heap_t *heap, unsigned c)
{
    if (__atomic_load_n(&abandoned[c].first, __ATOMIC_RELAXED) == NULL)
        return NULL;
    mallet__lock(&mallet__abandoned_lock);
    mallet_page_t *page = abandoned[c].first;
    if (page)
        mallet__page_list_remove(&abandoned[c], page);
    mallet__unlock(&mallet__abandoned_lock);
    if (page == NULL)
        return NULL;
    __atomic_store_n(&page->heap, (uintptr_t)heap, __ATOMIC_RELEASE);
    page->where = MALLET_PAGE_FREE;
    mallet__stat_add(heap, pages_adopted, 1);
    mallet__page_collect(page);
    return page;
}

void mallet__thread_sweep_abandoned(void)
{
    mallet__lock(&mallet__abandoned_lock);
    for (unsigned c = 0; c < MALLET_CLASSES; c++) {
        for (mallet_page_t *page = abandoned[c].first; page;) {
            mallet_page_t *next = page->next;
            mallet__page_collect(page);
            if (mallet__page_is_empty(page)) {
                mallet__page_list_remove(&abandoned[c], page);
                mallet__span_page_retire(page);
            }
            page = next;
        }
    }
    mallet__unlock(&mallet__abandoned_lock);
}

uint64_t mallet__thread_check_abandoned(const char *func)
{
    uint64_t n = 0;
    mallet__lock(&mallet__abandoned_lock);
    for (unsigned c = 0; c < MALLET_CLASSES; c++)
        for (mallet_page_t *page = abandoned[c].first; page; page = page->next)
            n += mallet__page_check(page, func);
    mallet__unlock(&mallet__abandoned_lock);
    return n;
}

// --- fork ---------------------------------------------------------------------

static void fork_prepare(void)
{
    mallet__lock(&mallet__heaps_lock);
    for (mallet_heap_t *h = mallet__heaps; h; h = h->next)
        mallet__lock(&h->lock);
    mallet__lock(&mallet__abandoned_lock);
    mallet__lock(&mallet__seg_lock);
    mallet__large_lock_all();
#if MALLET_SECURE
    mallet__zero_lock_all();
#endif
}

static void fork_parent(void)
{
#if MALLET_SECURE
    mallet__zero_unlock_all();
#endif
    mallet__large_unlock_all();
    mallet__unlock(&mallet__seg_lock);
    mallet__unlock(&mallet__abandoned_lock);
    for (mallet_heap_t *h = mallet__heaps; h; h = h->next)
        mallet__unlock(&h->lock);
    mallet__unlock(&mallet__heaps_lock);
}

static void fork_child(void)
{
    // The handlers ran, so they are registered, whatever the parent's
    // registering thread had stored yet.
    __atomic_store_n(&mallet__fork_state, 2, __ATOMIC_RELEASE);
    mallet__large_reset_lock();
#if MALLET_SECURE
    mallet__zero_reset_lock();
#endif
    mallet__lock_reset(&mallet__seg_lock);
    mallet__lock_reset(&mallet__abandoned_lock);
    for (mallet_heap_t *h = mallet__heaps; h; h = h->next)
        mallet__lock_reset(&h->lock);
    mallet__lock_reset(&mallet__heaps_lock);
    mallet__purge_forget_thread();
    mallet__random_fork_child();
    // The other threads are gone, and each may have stopped in the middle
    // of a fast path, leaving its pages half updated: their heaps are not
    // walked, only forgotten (records and pages stay unused; frees of their
    // blocks still land safely on thread_free).
    mallet_heap_t *self = mallet__tls_heap;
    if (self != &mallet__heap_empty)
        mallet__heap_after_fork(self);
    mallet__lock(&mallet__heaps_lock);
    for (mallet_heap_t *h = mallet__heaps, *next; h; h = next) {
        next = h->next;
        if (h == self || h->internal)
            continue;
        for (int i = 0; i < MALLET_STAT_COUNT; i++)
            mallet__stat_orphan_add((mallet_stat_id_t)i, h->stat[i]);
        if (h->prev)
            h->prev->next = h->next;
        else
            mallet__heaps = h->next;
        if (h->next)
            h->next->prev = h->prev;
        h->alive = 0;
    }
    mallet__unlock(&mallet__heaps_lock);
}

void mallet__thread_register_fork(void)
{
    if (fork_registering)
        return;               // pthread_atfork allocating: let it
    if (!mallet__claim(&mallet__fork_state))
        return;
    fork_registering = 1;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    fork_registering = 0;
    __atomic_store_n(&mallet__fork_state, 2, __ATOMIC_RELEASE);
}

void mallet__thread_after_slow(void)
{
    mallet__purge_maybe_start();
}
