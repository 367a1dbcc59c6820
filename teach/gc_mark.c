// SPDX-License-Identifier: MIT
//
// gc_mark.c -- the mark phase: find the roots, then mark every block they
// reach, conservatively. The sweep that follows is in gc.c.
//
// The roots, and why each is found the way it is:
//   registers  gc.c spills them (__builtin_unwind_init) into a frame that the
//              stack scan covers. Not setjmp: glibc mangles the frame pointer
//              it saves, and a register used as a plain pointer would hide.
//   stack      from the innermost frame up to the stack's base, found once,
//              at the first allocation, with pthread_getattr_np. It works on
//              whichever thread owns the heap; __libc_stack_end would only
//              know the main thread's.
//   data, bss  every writable PT_LOAD segment of every loaded object,
//              through dl_iterate_phdr, and the owner's block of each PT_TLS
//              segment. Unlike the linker's __data_start/_end this also sees
//              the globals of shared libraries -- an interpreter built as a
//              library keeps its roots there -- and __thread variables. The
//              collector's own state (mallet__gc) is skipped.
//   ranges     what gc_add_root registered.
//
// Marking is depth-first with an explicit stack of block addresses, never
// recursion: a million-node list needs one stack entry at a time, not a
// million C frames. The stack is mapped memory that doubles when full and
// shrinks back to 64 KiB after the collection. If it cannot grow, the push is dropped -- the block stays marked but unscanned --
// and after the stack drains the whole heap is walked once more, scanning
// every marked block, until a pass drops nothing.
//
// Under the checkers the scan reads memory that looks wrong to them: stack
// redzones and block tails that ASan poisons (so every reading function is
// GC_NO_ASAN), and stack slots memcheck knows to be uninitialised (so under
// memcheck each word is copied and only the copy declared defined; the
// program's memory keeps its state). Under ASan with detect_stack_use_after_
// return, locals live in "fake frames" off the stack; the stack scan scans
// every fake frame that a stack word points into.
#define _GNU_SOURCE
#include "gc_heap.h"

#include <link.h>

#define GC_MARK_STACK_INITIAL ((size_t)64 << 10)

#define heap mallet__gc      // the one heap, under a short name in this file

bool mallet__gc_mark_init(void)
{
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return false;
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_destroy(&attr);
    if (rc != 0)
        return false;
    heap.stack_hi = (uintptr_t)addr + size;
    heap.stack = mallet__os_map(GC_MARK_STACK_INITIAL, 0);
    heap.stack_cap = GC_MARK_STACK_INITIAL / sizeof(uintptr_t);
    heap.stack_len = 0;
    return heap.stack != NULL;
}

// Load a word the scan is about to test. See the top of the file.
GC_NO_ASAN static inline uintptr_t gc_load(const uintptr_t *p)
{
    uintptr_t w = *p;
#if GC_MEMCHECK
    MALLET_TRACK_MEM_DEFINED(&w, sizeof w);
#endif
    return w;
}

static void gc_push(uintptr_t block)
{
    if (heap.stack_len == heap.stack_cap) {
        size_t old = heap.stack_cap * sizeof(uintptr_t);
        uintptr_t *s = mallet__os_remap(heap.stack, old, 2 * old);
        if (s == NULL) {
            heap.overflowed = true;
            return;
        }
        heap.stack = s;
        heap.stack_cap *= 2;
    }
    heap.stack[heap.stack_len++] = block;
}

// If w points into an allocated block that is not yet marked, mark it and
// push it to be scanned.
static void gc_mark_word(uintptr_t w)
{
    uintptr_t off = w - heap.base;
    if (off >= heap.npages << GC_PAGE_SHIFT)
        return;
    size_t page_no = off >> GC_PAGE_SHIFT;
    gc_page_t *pg = gc_desc(page_no);
    if (pg->kind == GC_PAGE_LARGE_TAIL) {
        page_no = pg->head;
        pg = gc_desc(page_no);
    }
    uintptr_t start = heap.base + (page_no << GC_PAGE_SHIFT);
    if (pg->kind == GC_PAGE_LARGE) {
        if (pg->mark[0])
            return;
        pg->mark[0] = 1;
    } else if (pg->kind == GC_PAGE_SMALL) {
        size_t i = gc_block_index(pg, w - start);
        uint64_t bit = 1ull << (i % 64);
        if (i >= pg->nblocks || !(pg->used[i / 64] & bit) || (pg->mark[i / 64] & bit))
            return;
        pg->mark[i / 64] |= bit;
        start += i * pg->bsize;
    } else {
        return;
    }
    heap.stats.last_marked++;
    gc_push(start);
}

// Every aligned word of [lo, hi) is a possible pointer.
GC_NO_ASAN static void gc_scan_range(uintptr_t lo, uintptr_t hi)
{
    lo = (lo + sizeof(uintptr_t) - 1) & ~(uintptr_t)(sizeof(uintptr_t) - 1);
    for (uintptr_t a = lo; a + sizeof(uintptr_t) <= hi; a += sizeof(uintptr_t))
        gc_mark_word(gc_load((const uintptr_t *)a));
}

// The bytes of a marked block worth scanning: the whole small block (its
// tail past the request is zero), or what a large block asked for; under
// memcheck exactly the request.
GC_NO_ASAN static void gc_scan_block(uintptr_t block)
{
    gc_page_t *pg = gc_desc((block - heap.base) >> GC_PAGE_SHIFT);
    size_t len = pg->req;
    if (pg->kind == GC_PAGE_SMALL) {
#if GC_MEMCHECK
        len = gc_reqs(pg)[gc_block_index(pg, block - (uintptr_t)gc_page_addr(pg))];
#else
        len = pg->bsize;
#endif
    }
    gc_scan_range(block, block + len);
}

GC_NO_ASAN static void gc_drain(void)
{
    while (heap.stack_len > 0)
        gc_scan_block(heap.stack[--heap.stack_len]);
}

// After an overflow: scan every marked block again. Blocks already scanned
// find their children marked and push nothing; the dropped ones push theirs.
GC_NO_ASAN static void gc_rescan_marked(void)
{
    for (size_t i = 0; i < heap.npages; i++) {
        gc_page_t *pg = gc_desc(i);
        uintptr_t start = (uintptr_t)gc_page_addr(pg);
        if (pg->kind == GC_PAGE_LARGE && pg->mark[0]) {
            gc_scan_block(start);
            gc_drain();
        } else if (pg->kind == GC_PAGE_SMALL) {
            for (unsigned w = 0; w < GC_BITMAP_WORDS; w++) {
                for (uint64_t m = pg->mark[w]; m; m &= m - 1) {
                    gc_scan_block(start + ((size_t)w * 64 + (size_t)__builtin_ctzll(m)) * pg->bsize);
                    gc_drain();
                }
            }
        }
    }
}

// A data range, minus the collector's own state.
GC_NO_ASAN static void gc_scan_data(uintptr_t lo, uintptr_t hi)
{
    uintptr_t self_lo = (uintptr_t)&mallet__gc, self_hi = self_lo + sizeof mallet__gc;
    if (hi <= self_lo || lo >= self_hi) {
        gc_scan_range(lo, hi);
        return;
    }
    gc_scan_range(lo, self_lo);
    gc_scan_range(self_hi, hi);
}

GC_NO_ASAN static int gc_scan_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    (void)ctx;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W)) {
            uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
            gc_scan_data(lo, lo + ph->p_memsz);
        } else if (ph->p_type == PT_TLS && info->dlpi_tls_data) {
            uintptr_t lo = (uintptr_t)info->dlpi_tls_data;
            gc_scan_range(lo, lo + ph->p_memsz);
        }
    }
    return 0;
}

// The stack from this frame up. The caller (gc.c) spilled the registers into
// a frame above this one.
GC_NO_ASAN __attribute__((noinline)) static void gc_scan_stack(void)
{
    uintptr_t lo = (uintptr_t)__builtin_frame_address(0);
    gc_scan_range(lo, heap.stack_hi);
#if defined(MALLET_TRACK_ASAN)
    void *fake = __asan_get_current_fake_stack();
    if (fake == NULL)
        return;
    for (uintptr_t a = lo; a + sizeof(uintptr_t) <= heap.stack_hi; a += sizeof(uintptr_t)) {
        void *beg, *end;
        if (__asan_addr_is_in_fake_stack(fake, (void *)*(uintptr_t *)a, &beg, &end))
            gc_scan_range((uintptr_t)beg, (uintptr_t)end);
    }
#endif
}

GC_NO_ASAN void mallet__gc_mark(void)
{
    dl_iterate_phdr(gc_scan_object, NULL);
    for (size_t i = 0; i < heap.nroots; i++)
        gc_scan_range(heap.roots[i].lo, heap.roots[i].hi);
    gc_scan_stack();
    gc_drain();
    while (heap.overflowed) {
        heap.overflowed = false;
        heap.stats.mark_stack_overflows++;
        gc_rescan_marked();
    }
    // One wide structure should not pin a large mark stack for good.
    if (heap.stack_cap * sizeof(uintptr_t) > GC_MARK_STACK_INITIAL) {
        uintptr_t *s = mallet__os_remap(heap.stack, heap.stack_cap * sizeof(uintptr_t),
                                        GC_MARK_STACK_INITIAL);
        if (s != NULL) {
            heap.stack = s;
            heap.stack_cap = GC_MARK_STACK_INITIAL / sizeof(uintptr_t);
        }
    }
}
