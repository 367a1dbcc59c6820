// SPDX-License-Identifier: MIT
//
// thread.c -- the TLS heap pointer, thread exit, abandoned pages.
//
// Thread exit: a pthread key's destructor abandons the heap. Its empty
// pages go back to their segments; the others are put on a global list per
// class with owner 0, where other threads' frees keep landing on thread_free
// as before. A thread that needs a page of that class adopts one (it
// becomes the owner and collects those frees); the purger retires the ones
// that become empty with nobody adopting them.
//
// Fork: the child handler (api/fork.c) calls mallet__thread_after_fork
// to repair what this file keeps.
#include "thread.h"

#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "large.h"
#include "purge.h"
#include "span.h"

__thread mallet_heap_t *mallet__tls_heap __attribute__((tls_model("initial-exec"))) = &mallet__heap_empty;

mallet_lock_t mallet__abandoned_lock;
static mallet_page_list_t abandoned[MALLET_CLASSES];   // ownerless pages per class
static pthread_key_t exit_key;
static bool exit_key_ok;                                // exit_key was created

// A thread's allocations after its heap was abandoned: destructors that
// glibc runs after libmallet's (other pthread keys', in later rounds) may
// allocate. A heap made for them would never be abandoned, since glibc
// calls libmallet's key no more once its rounds are over: they come from
// one heap that every exiting thread shares, owned by exiting_lock's
// holder, whose blocks are freed like another thread's.
static mallet_lock_t exiting_lock;
static mallet_heap_t *exiting_heap;
__thread uint8_t mallet__tls_exited __attribute__((tls_model("initial-exec")));

void *mallet__thread_exiting_alloc(size_t req, int cls)
{
    void *b = NULL;
    mallet__lock(&exiting_lock);
    if (exiting_heap == NULL)
        exiting_heap = mallet__heap_create_shared();
    if (exiting_heap) {
        mallet__tls_heap = exiting_heap;
        b = mallet__malloc_slow(req, exiting_heap, cls);
        mallet__tls_heap = &mallet__heap_empty;
    }
    mallet__unlock(&exiting_lock);
    return b;
}

uint64_t mallet__thread_exiting_listed(uint64_t *bytes)
{
    uint64_t n = 0;
    mallet__lock(&exiting_lock);
    if (exiting_heap)
        n = mallet__heap_listed_all(exiting_heap, bytes);
    mallet__unlock(&exiting_lock);
    return n;
}

static void exiting_after_fork(void)
{
    mallet_lock_found_t found = mallet__lock_after_fork(&exiting_lock);
    if (found == MALLET_LOCK_WAS_MINE)
        return;
    if (found == MALLET_LOCK_WAS_LOST)
        exiting_heap = NULL;        // half updated: a new one is made
    mallet__unlock(&exiting_lock);
}

static void thread_exit(void *value)
{
    mallet_heap_t *heap = value;
    mallet__heap_self();
    // A heap this thread no longer uses (a fork child gave it up) is left.
    if (heap == NULL || heap == &mallet__heap_empty || heap != mallet__tls_heap)
        return;
    mallet__tls_heap = &mallet__heap_empty;
    mallet__tls_exited = 1;
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
        for (mallet_page_t *page = abandoned[c].first; page; page = page->next) {
            mallet__page_collect(page);
            n += mallet__page_check(page, func, 0, 0);
        }
    mallet__unlock(&mallet__abandoned_lock);
    return n;
}

// --- fork ---------------------------------------------------------------------

// The abandoned lists, in a fork child: a list a vanished thread was
// changing may be half linked, so all of them are given up (their pages stay
// out of use; frees of their blocks still land on thread_free).
static void abandoned_after_fork(void)
{
    mallet_lock_found_t found = mallet__lock_after_fork(&mallet__abandoned_lock);
    if (found == MALLET_LOCK_WAS_MINE)
        return;
    if (found == MALLET_LOCK_WAS_LOST)
        memset(abandoned, 0, sizeof abandoned);
    mallet__unlock(&mallet__abandoned_lock);
}

void mallet__thread_after_fork(void)
{
    abandoned_after_fork();
    exiting_after_fork();
}

void mallet__thread_after_slow(void)
{
    mallet__purge_maybe_start();
}
