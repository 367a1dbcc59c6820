// SPDX-License-Identifier: MIT
//
// test_lib_guard.c -- guarded sampling (src/secure/guard.h). At guard_sample_kb=0
// every allocation is guarded while the pool has a free slot, so each
// misuse below is made on a guarded block for sure: a use after free (read
// and write), an overflow and an underflow that fault, an overflow that
// stays in the slack and is found at free, a double free, a free of the
// block's inside, realloc and malloc_usable_size of a freed block -- on
// small, large and aligned blocks. Each is made in a forked child whose
// report must name the kind, the address and the three functions where the
// block was allocated, freed and misused. Then: the program's own SIGSEGV
// handler, installed before or after the pool's, gets its own faults; a
// fault outside the pool with no handler kills as before; no handler is
// installed before the first guarded block; faults from another thread
// and in a fork child are reported; a long random run, in one thread and
// in several, keeps every block's contents; a full pool serves blocks the
// ordinary way.
//
// AddressSanitizer builds leave the pool out (ASan owns the fault handler
// and finds these misuses itself): every test skips there. Under memcheck
// the misuses are reported by memcheck first, and those tests skip.
// tsan: yes
#include "test.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mallet.h"

#if defined(__SANITIZE_ADDRESS__)
#define SKIP_WITHOUT_POOL() TEST_SKIP("the pool is left out of AddressSanitizer builds")
#else
#define SKIP_WITHOUT_POOL() do { } while (0)
#endif
// Memcheck reports each misuse itself, before the access reaches the pool.
#define SKIP_MISUSE_UNDER_MEMCHECK() \
    do { if (test_under_valgrind()) TEST_SKIP("memcheck reports the misuse itself"); } while (0)
// Loops run shorter under the checkers, every check kept: each guarded
// block costs system calls, which ThreadSanitizer and memcheck slow most.
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif
static int scaled(int n)
{
    return test_under_valgrind() ? n / 12 : UNDER_TSAN ? n / 5 : n;
}
// ThreadSanitizer installs a SIGSEGV handler of its own at start-up.
#if defined(__SANITIZE_THREAD__)
#define SKIP_IF_SANITIZER_HANDLES_SEGV() TEST_SKIP("ThreadSanitizer owns SIGSEGV before the program starts")
#else
#define SKIP_IF_SANITIZER_HANDLES_SEGV() do { } while (0)
#endif

#define PAGE 4096

// Every allocation guarded while slots are free; the child's first call.
static void guard_every(void)
{
    mallet_option_set("guard_sample_kb", 0);
}

// --- the call sites a report must name --------------------------------------------

// Used after the call, so the call is not a tail call: the site's frame
// stays on the stack.
static void *kept(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

enum { SMALL, LARGE, ALIGNED, HUGE_ALIGNED, SHAPES };
static const size_t shape_size[SHAPES] = { 100, 300000, 200, 1000 };
static const size_t shape_align[SHAPES] = { 0, 0, 256, 65536 };

__attribute__((noinline)) static char *alloc_site(int shape)
{
    void *p = shape_align[shape] ? mallet_aligned_alloc(shape_align[shape], shape_size[shape])
                                 : mallet_malloc(shape_size[shape]);
    return kept(p);
}

__attribute__((noinline)) static void free_site(char *p)
{
    mallet_free(p);
    kept(p);
}

// write 2 writes the byte's complement: the slack's fill is a random byte
// per block, which a constant would match one time in 255.
__attribute__((noinline)) static int use_site(char *p, long at, int write)
{
    volatile char *v = (volatile char *)p;
    if (write == 2)
        v[at] = (char)~v[at];
    else if (write)
        v[at] = 1;
    return v[at] + (int)(uintptr_t)kept(NULL);
}

// A guarded block of the shape whose end is flush with a page (left = 0)
// or whose start is (left = 1): blocks are placed on either side at random.
static char *flush_block(int shape, int left)
{
    for (int i = 0; i < 200; i++) {
        char *p = alloc_site(shape);
        size_t n = shape_size[shape];
        size_t a = shape_align[shape] ? shape_align[shape] : 16;
        bool is_left = ((uintptr_t)p & (PAGE - 1)) == 0 && ((uintptr_t)(p + n) & (PAGE - 1)) != 0;
        bool is_right = ((uintptr_t)p + ((n + a - 1) & ~(a - 1))) % PAGE == 0;
        if (left ? is_left : is_right)
            return p;
    }
    return NULL;
}

// --- the misuses ----------------------------------------------------------------

enum { READ_AFTER_FREE, WRITE_AFTER_FREE, OVERFLOW, UNDERFLOW, SLACK_OVERFLOW, DOUBLE_FREE, INSIDE_FREE,
       REALLOC_FREED, USABLE_FREED, KINDS };

typedef struct misuse {
    int kind, shape;
} misuse_t;

static const char *const kind_words[KINDS] = {
    "use after free: a read at", "use after free: a write at", "heap overflow: a write at",
    "heap underflow: a read at", "heap overflow found at free", "double free of", "invalid pointer",
    "double free of", "use after free of",
};

// The address each misuse names, written by the child before it dies.
static uintptr_t *named;

static void misuse_child(void *arg)
{
    const misuse_t *m = arg;
    guard_every();
    size_t n = shape_size[m->shape];
    char *p = flush_block(m->shape, m->kind == UNDERFLOW);
    if (p == NULL)
        _exit(3);
    memset(p, 7, n);
    size_t align = shape_align[m->shape] ? shape_align[m->shape] : 16;
    switch (m->kind) {
    case READ_AFTER_FREE:
        free_site(p);
        *named = (uintptr_t)p + n / 2;
        use_site(p, (long)(n / 2), 0);
        break;
    case WRITE_AFTER_FREE:
        free_site(p);
        *named = (uintptr_t)p;
        use_site(p, 0, 1);
        break;
    case OVERFLOW: {
        long past = (long)((n + align - 1) & ~(align - 1));     // the first byte of the next page
        *named = (uintptr_t)p + (uintptr_t)past;
        use_site(p, past, 1);
        break;
    }
    case UNDERFLOW:
        *named = (uintptr_t)p - 1;
        use_site(p, -1, 0);
        break;
    case SLACK_OVERFLOW:
        if ((n & (align - 1)) == 0)
            _exit(4);                                        // no slack to write into
        *named = (uintptr_t)p + n;
        use_site(p, (long)n, 2);
        free_site(p);
        break;
    case DOUBLE_FREE:
        free_site(p);
        *named = (uintptr_t)p;
        free_site(p);
        break;
    case INSIDE_FREE:
        *named = (uintptr_t)p + 16;
        free_site(p + 16);
        break;
    case REALLOC_FREED:
        free_site(p);
        *named = (uintptr_t)p;
        kept(mallet_realloc(p, 10));
        break;
    case USABLE_FREED:
        free_site(p + 0);
        *named = (uintptr_t)p;
        kept((void *)mallet_usable_size(p));
        break;
    }
    _exit(0);
}

// The kinds each shape can show: a block whose size is a multiple of its
// alignment has no slack.
static bool kind_applies(int kind, int shape)
{
    size_t a = shape_align[shape] ? shape_align[shape] : 16;
    return kind != SLACK_OVERFLOW || (shape_size[shape] & (a - 1)) != 0;
}

static void check_misuse(int kind, int shape)
{
    static char text[32768];
    misuse_t m = { kind, shape };
    *named = 0;
    int status = test_run_child(misuse_child, &m, text, sizeof text);
    char hex[32];
    snprintf(hex, sizeof hex, "%#lx", (unsigned long)*named);
    bool freed = kind == READ_AFTER_FREE || kind == WRITE_AFTER_FREE || kind == DOUBLE_FREE ||
                 kind == REALLOC_FREED || kind == USABLE_FREED || kind == SLACK_OVERFLOW;
    bool accessed = kind <= UNDERFLOW;
    bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strncmp(text, "mallet: ", 8) == 0 &&
              strstr(text, kind_words[kind]) && *named && strstr(text, hex) &&
              strstr(text, "a guarded block of") && strstr(text, "allocated by thread") &&
              strstr(text, "alloc_site") && (!freed || strstr(text, "free_site")) &&
              (!accessed || strstr(text, "use_site"));
    if (!ok)
        fprintf(stderr, "  kind %d shape %d (status %#x, named %s):\n%s\n", kind, shape, status, hex, text);
    CHECK(ok);
}

TEST(every_kind_of_report_on_every_shape)
{
    SKIP_WITHOUT_POOL();
    SKIP_MISUSE_UNDER_MEMCHECK();
    named = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int shape = 0; shape < SHAPES; shape++)
        for (int kind = 0; kind < KINDS; kind++)
            if (kind_applies(kind, shape))
                check_misuse(kind, shape);
}

// --- what a guarded block is ----------------------------------------------------------

TEST(a_guarded_block_holds_its_request_exactly)
{
    SKIP_WITHOUT_POOL();
    guard_every();
    static const size_t sizes[] = { 0, 1, 3, 8, 15, 16, 100, 4000, 5000, 70000, 300000 };
    mallet_stats_t st;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = mallet_malloc(sizes[i]);
        CHECK(p != NULL);
        CHECK(mallet_usable_size(p) == sizes[i]);
        // malloc's alignment: what an object of that size can need.
        size_t need = sizes[i] >= 16 ? 16 : sizes[i] >= 8 ? 8 : sizes[i] >= 4 ? 4 : 1;
        CHECK((uintptr_t)p % need == 0);
        memset(p, 0x5a, sizes[i]);
        mallet_stats_get(&st);
        CHECK(st.guarded == 1);
        mallet_free(p);
    }
    // calloc's block is zero; aligned ones are aligned.
    unsigned char *z = mallet_calloc(1000, 3);
    for (int i = 0; i < 3000; i++)
        CHECK(z[i] == 0);
    mallet_free(z);
    static const size_t aligns[] = { 32, 256, 4096, 8192, 65536, 1 << 20 };
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        void *q = NULL;
        CHECK(mallet_posix_memalign(&q, aligns[i], 100) == 0);
        CHECK((uintptr_t)q % aligns[i] == 0);
        CHECK(mallet_usable_size(q) == 100);
        mallet_free(q);
    }
    mallet_stats_get(&st);
    CHECK(st.guarded == 0);
    CHECK(st.guarded_total == sizeof sizes / sizeof sizes[0] + 1 + sizeof aligns / sizeof aligns[0]);
}

TEST(realloc_carries_a_guarded_block)
{
    SKIP_WITHOUT_POOL();
    guard_every();
    unsigned char *p = mallet_malloc(50);
    for (int i = 0; i < 50; i++)
        p[i] = (unsigned char)i;
    static const size_t steps[] = { 60, 20, 5000, 400000, 30 };
    size_t held = 20;
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        unsigned char *q = mallet_realloc(p, steps[s]);
        CHECK(q != NULL && q != p);          // a guarded block always moves
        for (size_t i = 0; i < held && i < steps[s]; i++)
            CHECK(q[i] == (unsigned char)i);
        for (size_t i = held; i < steps[s]; i++)
            q[i] = (unsigned char)i;
        held = steps[s] < 50 ? steps[s] : 50;
        p = q;
    }
    mallet_free(p);
}

TEST(guard_off_guards_nothing)
{
    SKIP_WITHOUT_POOL();
    mallet_option_set("guard", 0);
    guard_every();
    void *p = mallet_malloc(20);
    mallet_stats_t st;
    mallet_stats_get(&st);
    CHECK(st.guarded_total == 0);
    mallet_free(p);
}

TEST(a_full_pool_serves_blocks_the_ordinary_way)
{
    SKIP_WITHOUT_POOL();
    mallet_option_set("guard_slots", 4);
    guard_every();
    void *p[12];
    for (int i = 0; i < 12; i++) {
        p[i] = mallet_malloc(40);
        memset(p[i], i, 40);
    }
    mallet_stats_t st;
    mallet_stats_get(&st);
    CHECK(st.guarded == 4);
    for (int i = 0; i < 12; i++) {
        CHECK(((unsigned char *)p[i])[39] == i);
        mallet_free(p[i]);
    }
    mallet_stats_get(&st);
    CHECK(st.guarded == 0);
}

// --- the program's own fault handler ---------------------------------------------------

static volatile sig_atomic_t own_faults;
static char *own_page;

static void own_handler(int sig, siginfo_t *info, void *ctx)
{
    (void)sig, (void)ctx;
    if ((char *)info->si_addr >= own_page && (char *)info->si_addr < own_page + PAGE) {
        own_faults++;
        mprotect(own_page, PAGE, PROT_READ | PROT_WRITE);
        return;
    }
    _exit(42);                               // a fault the test did not make
}

static void install_own(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = own_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
}

static void own_fault(void)
{
    mprotect(own_page, PAGE, PROT_NONE);
    ((volatile char *)own_page)[10] = 1;
}

static void handler_child(void *arg)
{
    bool before = arg != NULL;
    own_page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (before)
        install_own();
    guard_every();
    char *p = mallet_malloc(64);             // the first guarded block: the pool's handler
    if (!before)
        install_own();
    own_fault();
    own_fault();
    if (own_faults != 2)
        _exit(1);
    mallet_free(p);
    if (!before)
        _exit(0);
    ((volatile char *)p)[0] = 1;             // the pool's: a report, not the program's handler
    _exit(2);
}

TEST(the_programs_handler_installed_before_gets_its_faults)
{
    SKIP_WITHOUT_POOL();
    SKIP_MISUSE_UNDER_MEMCHECK();
    char text[8192];
    int status = test_run_child(handler_child, (void *)1, text, sizeof text);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(text, "use after free: a write at") != NULL);
}

TEST(the_programs_handler_installed_after_is_kept)
{
    SKIP_WITHOUT_POOL();
    char text[8192];
    int status = test_run_child(handler_child, NULL, text, sizeof text);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(text[0] == 0);
}

static void wild_child(void *arg)
{
    (void)arg;
    guard_every();
    mallet_free(mallet_malloc(10));
    ((volatile char *)kept((void *)16))[0] = 1;     // not the pool's
    _exit(0);
}

TEST(a_fault_outside_the_pool_kills_as_without_it)
{
    SKIP_WITHOUT_POOL();
    SKIP_MISUSE_UNDER_MEMCHECK();
    SKIP_IF_SANITIZER_HANDLES_SEGV();
    char text[4096];
    int status = test_run_child(wild_child, NULL, text, sizeof text);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
    CHECK(strstr(text, "mallet") == NULL);
}

TEST(no_handler_before_the_first_guarded_block)
{
    SKIP_WITHOUT_POOL();
    SKIP_IF_SANITIZER_HANDLES_SEGV();
    struct sigaction now;
    mallet_option_set("guard_sample_kb", (int64_t)1 << 30);    // none sampled in this test
    for (int i = 0; i < 1000; i++)
        mallet_free(mallet_malloc(100));
    sigaction(SIGSEGV, NULL, &now);
    CHECK(now.sa_handler == SIG_DFL);
}

TEST(the_first_guarded_block_installs_the_handler)
{
    SKIP_WITHOUT_POOL();
    struct sigaction now;
    guard_every();
    mallet_free(mallet_malloc(100));
    sigaction(SIGSEGV, NULL, &now);
    CHECK(now.sa_handler != SIG_DFL);
    sigaction(SIGBUS, NULL, &now);
    CHECK(now.sa_handler != SIG_DFL);
}

// --- threads and fork -----------------------------------------------------------------

static char *shared_block;
static pid_t freer_tid;

static void *freer(void *arg)
{
    (void)arg;
    freer_tid = (pid_t)syscall(SYS_gettid);
    free_site(shared_block);
    return NULL;
}

static void other_thread_child(void *arg)
{
    (void)arg;
    guard_every();
    shared_block = alloc_site(SMALL);
    pthread_t t;
    pthread_create(&t, NULL, freer, NULL);
    pthread_join(t, NULL);
    fprintf(stderr, "freer %d\n", (int)freer_tid);
    use_site(shared_block, 5, 0);
    _exit(0);
}

TEST(a_block_freed_by_one_thread_and_read_by_another)
{
    SKIP_WITHOUT_POOL();
    SKIP_MISUSE_UNDER_MEMCHECK();
    char text[16384], want[64], me[64];
    int status = test_run_child(other_thread_child, NULL, text, sizeof text);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(text, "use after free: a read at") != NULL);
    int tid = 0;
    CHECK(sscanf(text, "freer %d", &tid) == 1);
    snprintf(want, sizeof want, "freed by thread %d:", tid);
    CHECK(strstr(text, want) != NULL);
    snprintf(me, sizeof me, "in thread %d\n", tid);
    CHECK(strstr(text, me) == NULL);                 // the reader, not the freer
}

static void fork_child(void *arg)
{
    (void)arg;
    guard_every();
    char *p = alloc_site(SMALL);
    memset(p, 9, shape_size[SMALL]);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        // The child's copy of the block: readable, freeable, then guarded.
        if (p[99] != 9)
            _exit(5);
        free_site(p);
        use_site(p, 1, 0);
        _exit(6);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        _exit(7);
    // The parent's block is untouched by the child's free.
    if (p[0] != 9)
        _exit(8);
    free_site(p);
    _exit(0);
}

TEST(a_fork_child_keeps_guarded_blocks_working_and_reporting)
{
    SKIP_WITHOUT_POOL();
    SKIP_MISUSE_UNDER_MEMCHECK();
    char text[16384];
    int status = test_run_child(fork_child, NULL, text, sizeof text);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(strstr(text, "use after free: a read at") != NULL);
}

// --- long runs --------------------------------------------------------------------

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *s)
{
    uint64_t r = next(s);
    switch (r % 8) {
    case 0: return r >> 8 & 7;
    case 1: return 70000 + (r >> 8) % 200000;
    case 2: return (r >> 8) % 8000;
    default: return (r >> 8) % 300;
    }
}

static void fill(unsigned char *p, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(tag + i * 7);
}

static bool intact(const unsigned char *p, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(tag + i * 7))
            return false;
    return true;
}

#define LIVE 512

// Random malloc, calloc, aligned, realloc and free over LIVE slots; every
// block's contents checked before it is freed or moved. The number of
// blocks found damaged.
static int random_run(uint64_t seed, int ops)
{
    unsigned char *p[LIVE] = { 0 };
    size_t n[LIVE] = { 0 };
    int bad = 0;
    uint64_t s = seed;
    for (int op = 0; op < ops; op++) {
        int i = (int)(next(&s) % LIVE);
        if (p[i]) {
            bad += !intact(p[i], n[i], (uint64_t)i);
            if (next(&s) % 3 == 0) {
                size_t m = pick_size(&s);
                unsigned char *q = mallet_realloc(p[i], m ? m : 1);
                if (q == NULL)
                    return bad + 1;
                p[i] = q;
                n[i] = m ? m : 1;
                fill(p[i], n[i], (uint64_t)i);
                continue;
            }
            mallet_free(p[i]);
            p[i] = NULL;
            continue;
        }
        n[i] = pick_size(&s);
        switch (next(&s) % 4) {
        case 0:
            p[i] = mallet_calloc(1, n[i]);
            for (size_t k = 0; p[i] && k < n[i]; k++)
                bad += p[i][k] != 0;
            break;
        case 1:
            p[i] = mallet_aligned_alloc((size_t)64 << (next(&s) % 8), n[i]);
            break;
        default:
            p[i] = mallet_malloc(n[i]);
        }
        if (p[i] == NULL)
            return bad + 1;
        fill(p[i], n[i], (uint64_t)i);
    }
    for (int i = 0; i < LIVE; i++)
        if (p[i]) {
            bad += !intact(p[i], n[i], (uint64_t)i);
            mallet_free(p[i]);
        }
    return bad;
}

TEST(a_long_random_run_keeps_every_block_intact)
{
    SKIP_WITHOUT_POOL();
    guard_every();
    CHECK(random_run(0x9e3779b97f4a7c15ull, scaled(60000)) == 0);
    mallet_stats_t st;
    mallet_stats_get(&st);
    CHECK(st.guarded == 0);
    CHECK(st.guarded_total > (test_under_valgrind() ? 500u : 2000u));
}

static void *run_thread(void *arg)
{
    return (void *)(uintptr_t)random_run((uint64_t)(uintptr_t)arg, scaled(20000));
}

// Blocks handed from thread to thread and freed there: the pool's slots
// are claimed and given back by all of them at once.
static unsigned char *handoff[64];

static void *passer(void *arg)
{
    uintptr_t me = (uintptr_t)arg, bad = 0;
    for (int round = 0; round < scaled(3000); round++) {
        int k = (int)((me * 31 + (uintptr_t)round) % 64);
        unsigned char *mine = mallet_malloc(24 + (size_t)k);
        fill(mine, 24 + (size_t)k, (uint64_t)k);
        unsigned char *theirs = __atomic_exchange_n(&handoff[k], mine, __ATOMIC_ACQ_REL);
        if (theirs) {
            bad += !intact(theirs, 24 + (size_t)k, (uint64_t)k);
            mallet_free(theirs);
        }
    }
    return (void *)bad;
}

TEST(threads_share_the_pool)
{
    SKIP_WITHOUT_POOL();
    guard_every();
    enum { N = 4 };
    pthread_t t[N];
    void *bad;
    for (uintptr_t i = 0; i < N; i++)
        pthread_create(&t[i], NULL, run_thread, (void *)(i * 7919 + 1));
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], &bad);
        CHECK(bad == NULL);
    }
    for (uintptr_t i = 0; i < N; i++)
        pthread_create(&t[i], NULL, passer, (void *)i);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], &bad);
        CHECK(bad == NULL);
    }
    for (int k = 0; k < 64; k++)
        mallet_free(handoff[k]);
    mallet_stats_t st;
    mallet_stats_get(&st);
    CHECK(st.guarded == 0);
}
