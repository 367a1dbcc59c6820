// SPDX-License-Identifier: MIT
//
// override_misuse.c -- the checks that stay on in the default build: freeing
// twice (at once, after other frees, a large block), freeing what malloc never
// returned (an interior pointer, the stack, a global, a foreign mapping, a
// wild address), and realloc of a freed block. libmallet must print one line
// naming the error and the address, then abort.
//
// Each misuse runs in a forked child with its stderr captured. The glibc
// build checks what glibc does (it aborts for most, and crashes without a
// message for a few). Memcheck reports these itself, so under valgrind the
// tests skip.
#include "override_common.h"

#include <stdint.h>
#include <sys/mman.h>


static int aborted(const outcome_t *o)
{
    return WIFSIGNALED(o->status) && WTERMSIG(o->status) == SIGABRT;
}

static int one_line(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl && nl[1] == 0;
}

// glibc_needle for a misuse glibc lets through without a sign.
static const char GLIBC_MISSES[] = "";

// libmallet: SIGABRT after exactly one line that names the error (needle)
// and the address. glibc: the message it is known to print, or (NULL) just
// death, or (GLIBC_MISSES) nothing to check.
static void expect_report(void (*fn)(void *), void *arg, const void *addr,
                          const char *mallet_needle, const char *glibc_needle)
{
    outcome_t o;
    run_child(fn, arg, &o);
    if (test_on_mallet()) {
        char hex[32];
        snprintf(hex, sizeof hex, "%p", addr);
        CHECK(aborted(&o));
        CHECK(one_line(o.text));
        CHECK(strstr(o.text, "mallet") != NULL);
        CHECK(strstr(o.text, mallet_needle) != NULL);
        CHECK(strstr(o.text, hex) != NULL);
    } else if (glibc_needle == GLIBC_MISSES) {
        TEST_SKIP("glibc does not notice this misuse");
    } else if (glibc_needle) {
        CHECK(aborted(&o));
        CHECK(strstr(o.text, glibc_needle) != NULL);
    } else {
        // glibc follows the pointer and crashes, with no message.
        CHECK(WIFSIGNALED(o.status));
    }
}

// Memcheck reports misuse itself (and counts it as an error), so these tests
// skip under it, before they allocate anything it could call a leak.
#define SKIP_UNDER_MEMCHECK() \
    do { if (test_under_valgrind()) TEST_SKIP("memcheck reports misuse itself"); } while (0)

static char a_global[256];

static void do_free(void *p) { free(p); }

static void *opaque_block(size_t n)
{
    return opaque_ptr(malloc(n));
}

static void double_free_at_once(void *p)
{
    void *again = opaque_ptr(p);
    free(p);
    free(again);
}

TEST(double_free_at_once)
{
    SKIP_UNDER_MEMCHECK();
    void *p = opaque_block(32);
    expect_report(double_free_at_once, p, p, "double free", "double free");
}

// The block is freed, then seven neighbours of its size, then it again.
static void double_free_after_other_frees(void *p)
{
    void **others = p;
    void *again = opaque_ptr(others[0]);
    free(others[0]);
    for (int i = 1; i < 8; i++)
        free(others[i]);
    free(again);
}

TEST(double_free_after_other_frees)
{
    SKIP_UNDER_MEMCHECK();
    static void *blocks[8];
    for (int i = 0; i < 8; i++)
        blocks[i] = opaque_block(48);
    expect_report(double_free_after_other_frees, blocks, blocks[0], "double free", "double free");
}

TEST(double_free_of_a_large_block)
{
    SKIP_UNDER_MEMCHECK();
    void *p = opaque_block(8 << 20);
    expect_report(double_free_at_once, p, p, "double free", NULL);
}

TEST(free_of_an_interior_pointer)
{
    SKIP_UNDER_MEMCHECK();
    char *p = opaque_block(64);
    expect_report(do_free, p + 16, p + 16, "invalid pointer", "invalid pointer");
}

TEST(free_of_an_interior_pointer_of_a_large_block)
{
    SKIP_UNDER_MEMCHECK();
    char *p = opaque_block(4 << 20);
    expect_report(do_free, p + 65536, p + 65536, "invalid pointer", "invalid pointer");
}

static void free_stack(void *unused)
{
    (void)unused;
    char buf[64];
    memset(buf, 0, sizeof buf);
    free(opaque_ptr(buf + 16));
}

TEST(free_of_a_stack_address)
{
    SKIP_UNDER_MEMCHECK();
    outcome_t o;
    run_child(free_stack, NULL, &o);
    CHECK(aborted(&o));
    if (test_on_mallet()) {
        CHECK(one_line(o.text));
        CHECK(strstr(o.text, "invalid pointer") != NULL && strstr(o.text, "0x") != NULL);
    } else {
        // glibc's words depend on what it finds where a chunk header would be.
        CHECK(strstr(o.text, "free(): invalid") != NULL);
    }
}

TEST(free_of_a_global)
{
    SKIP_UNDER_MEMCHECK();
    expect_report(do_free, a_global + 16, a_global + 16, "invalid pointer", "invalid pointer");
}

TEST(free_of_memory_from_a_foreign_mmap)
{
    SKIP_UNDER_MEMCHECK();
    char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    expect_report(do_free, m + 65536, m + 65536, "invalid pointer", "invalid pointer");
}

TEST(free_of_a_wild_address)
{
    SKIP_UNDER_MEMCHECK();
    void *wild = (void *)(uintptr_t)0x123456789ab0;
    expect_report(do_free, wild, wild, "invalid pointer", NULL);
}

static void realloc_freed(void *p)
{
    void *again = opaque_ptr(p);
    free(p);
    void *r = realloc(again, 100);
    free(r);
}

TEST(realloc_of_a_freed_pointer)
{
    SKIP_UNDER_MEMCHECK();
    void *p = opaque_block(32);
    expect_report(realloc_freed, p, p, "realloc", GLIBC_MISSES);
}

// The checks cost nothing to a correct program: the same operations, done
// right, go through without a word.
static void correct_use(void *unused)
{
    (void)unused;
    void *p = malloc(32), *q = malloc(8 << 20);
    free(p);
    free(q);
}

TEST(correct_use_is_not_reported)
{
    SKIP_UNDER_MEMCHECK();
    outcome_t o;
    run_child(correct_use, NULL, &o);
    CHECK(WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0);
    CHECK(o.text[0] == 0);
}
