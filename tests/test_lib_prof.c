// SPDX-License-Identifier: MIT
//
// test_lib_prof.c -- the heap profiler, counted exactly: at prof_sample_kb=0
// every allocation is sampled, so the profile must hold each call site's
// blocks, live and ever, to the block. Frees from any thread drop samples,
// a large realloc moves its sample, statistics stay exact, files are named
// as documented (dump, peak, a fork child's exit), and fork beside threads
// that are sampling leaves the child able to sample and write.
// (The estimate at the default rate is checked on a real program by
// tests/prof.sh.)
// tsan: yes
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mallet.h"

// ASan and memcheck builds (SAN=address, TRACK=valgrind) move a large block
// by a copy rather than mremap.
#if defined(__SANITIZE_ADDRESS__) || defined(MALLET_TRACK_VALGRIND)
#define MALLET_TEST_CHECKER_BUILD 1
#else
#define MALLET_TEST_CHECKER_BUILD 0
#endif

// --- call sites ----------------------------------------------------------------

enum { SITE_SMALL, SITE_MID, SITE_LARGE, SITE_REALLOC, SITES };

// Used after the call, so the call is not a tail call: the site's frame
// stays on the stack.
static void *kept(void *p)
{
    __asm__ volatile("" : "+r"(p) : : "memory");
    return p;
}

__attribute__((noinline)) static void *site_small(void)
{
    return kept(mallet_malloc(100));
}

__attribute__((noinline)) static void *site_mid(void)
{
    return kept(mallet_malloc(5000));
}

__attribute__((noinline)) static void *site_large(void)
{
    return kept(mallet_malloc(1 << 20));
}

__attribute__((noinline)) static void *site_realloc(void *p, size_t n)
{
    return kept(mallet_realloc(p, n));
}

static uintptr_t site_addr(int s)
{
    void *fn[SITES] = { (void *)site_small, (void *)site_mid, (void *)site_large, (void *)site_realloc };
    return (uintptr_t)fn[s];
}

// The site whose code holds pc: the nearest site function at or below it.
static int site_of(uintptr_t pc)
{
    int best = -1;
    for (int s = 0; s < SITES; s++)
        if (site_addr(s) <= pc && pc - site_addr(s) < 512 && (best < 0 || site_addr(s) > site_addr(best)))
            best = s;
    return best;
}

// --- reading a profile ------------------------------------------------------------

typedef struct site_counts {
    uint64_t live, allocs;     // sampled blocks
    uint64_t live_bytes;       // their bytes
    size_t size;               // block size of the last record seen
    int records;               // records of the site
} site_counts_t;

typedef struct profile {
    site_counts_t site[SITES];
    uint64_t n1, b1, n2, b2;   // the header's totals
    uint64_t sum_n1, sum_b1;   // the records' sums
    long rate;                 // after heap_v2/
    int ok;                    // the file was read and every line parsed
} profile_t;

// Where this program's file starts in a /proc/PID/maps text (0: not found).
static uintptr_t exe_base(FILE *maps)
{
    static char exe[256];
    if (exe[0] == 0 && readlink("/proc/self/exe", exe, sizeof exe - 1) <= 0)
        return 0;
    char line[4096];
    unsigned long start, offset;
    while (fgets(line, sizeof line, maps))
        if (strstr(line, exe) && sscanf(line, "%lx-%*x %*s %lx", &start, &offset) == 2 && offset == 0)
            return start;
    return 0;
}

static uintptr_t my_base(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    uintptr_t base = f ? exe_base(f) : 0;
    if (f)
        fclose(f);
    return base;
}

// Read a profile; its frames are moved to this process's addresses (the
// profile may come from another run of this program, loaded elsewhere).
static profile_t read_profile(const char *path)
{
    profile_t pr;
    memset(&pr, 0, sizeof pr);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return pr;
    char line[4096];
    // The map first: it is at the end.
    while (fgets(line, sizeof line, f) && strcmp(line, "MAPPED_LIBRARIES:\n") != 0)
        ;
    uintptr_t shift = my_base() - exe_base(f);
    rewind(f);
    pr.ok = fgets(line, sizeof line, f) != NULL &&
            sscanf(line, "heap profile: %lu: %lu [ %lu: %lu] @ heap_v2/%ld", &pr.n1, &pr.b1, &pr.n2, &pr.b2,
                   &pr.rate) == 5;
    while (pr.ok && fgets(line, sizeof line, f) && line[0] != '\n') {
        uint64_t n1, b1, n2, b2;
        int at;
        if (sscanf(line, " %lu: %lu [ %lu: %lu] @%n", &n1, &b1, &n2, &b2, &at) != 4 || n2 == 0) {
            pr.ok = 0;
            break;
        }
        pr.sum_n1 += n1, pr.sum_b1 += b1;
        int s = site_of(strtoull(line + at, NULL, 16) + shift);
        if (s < 0)
            continue;
        pr.site[s].live += n1;
        pr.site[s].allocs += n2;
        pr.site[s].live_bytes += b1;
        pr.site[s].size = b2 / n2;
        pr.site[s].records++;
    }
    pr.ok = pr.ok && fgets(line, sizeof line, f) && strcmp(line, "MAPPED_LIBRARIES:\n") == 0;
    fclose(f);
    return pr;
}

static char dir[64];
static pid_t dir_owner;

// The test's folder, removed at the end of the test (not by a child it forked).
static void remove_dir(void)
{
    if (getpid() != dir_owner)
        return;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void make_dir(void)
{
    strcpy(dir, "/tmp/mallet-prof-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    dir_owner = getpid();
}

static void profile_on(void)
{
    make_dir();
    CHECK(mallet_option_set_text("prof_dir", dir));
    CHECK(mallet_option_set("prof_sample_kb", 0));
    CHECK(mallet_option_set("prof_at_exit", 0));
    CHECK(mallet_option_set("prof", 1));
}

static profile_t dump_and_read(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/now.heap", dir);
    CHECK(mallet_prof_dump(path) == 0);
    profile_t pr = read_profile(path);
    CHECK(pr.ok);
    CHECK(pr.rate == 1);
    CHECK(pr.sum_n1 == pr.n1 && pr.sum_b1 == pr.b1);
    return pr;
}

// --- tests ------------------------------------------------------------------------

TEST(every_allocation_counted_by_site_at_rate_zero)
{
    profile_on();
    void *s[10], *m[5], *l[3];
    for (int i = 0; i < 10; i++)
        s[i] = site_small();
    for (int i = 0; i < 5; i++)
        m[i] = site_mid();
    for (int i = 0; i < 3; i++)
        l[i] = site_large();
    for (int i = 0; i < 4; i++)
        mallet_free(s[i]);
    mallet_free(l[0]);
    profile_t pr = dump_and_read();
    CHECK(pr.site[SITE_SMALL].live == 6 && pr.site[SITE_SMALL].allocs == 10);
    CHECK(pr.site[SITE_SMALL].size >= 100 && pr.site[SITE_SMALL].size <= 128);
    CHECK(pr.site[SITE_MID].live == 5 && pr.site[SITE_MID].allocs == 5);
    CHECK(pr.site[SITE_MID].size >= 5000 && pr.site[SITE_MID].size <= 6144);
    CHECK(pr.site[SITE_LARGE].live == 2 && pr.site[SITE_LARGE].allocs == 3);
    CHECK(pr.site[SITE_LARGE].size == 1 << 20);
    // The blocks are the program's as ever.
    CHECK(mallet_usable_size(s[9]) >= 100 && mallet_usable_size(l[2]) >= 1 << 20);
    memset(m[0], 1, 5000);
    for (int i = 4; i < 10; i++)
        mallet_free(s[i]);
    for (int i = 0; i < 5; i++)
        mallet_free(m[i]);
    mallet_free(l[1]);
    mallet_free(l[2]);
    pr = dump_and_read();
    CHECK(pr.site[SITE_SMALL].live == 0 && pr.site[SITE_MID].live == 0 && pr.site[SITE_LARGE].live == 0);
    CHECK(pr.site[SITE_SMALL].allocs == 10);
    remove_dir();
}

// A double free of a sampled block is still caught.
static void free_sampled_twice(void *arg)
{
    (void)arg;
    mallet_option_set("prof_sample_kb", 0);
    mallet_option_set("prof_at_exit", 0);
    mallet_option_set("prof", 1);
    void *p = site_small();
    mallet_free(p);
    mallet_free(p);
}

TEST(a_sampled_block_freed_twice_is_reported)
{
    char out[512];
    CHECK(test_dies(free_sampled_twice, NULL, "mallet: free(): double free of 0x", out, sizeof out));
}

static void *free_all(void *arg)
{
    void **p = arg;
    for (int i = 0; i < 50; i++)
        mallet_free(p[i]);
    return NULL;
}

TEST(frees_from_another_thread_drop_the_samples)
{
    profile_on();
    void *p[50];
    for (int i = 0; i < 50; i++)
        p[i] = site_small();
    mallet_stats_t a, b;
    mallet_stats_get(&a);
    pthread_t t;
    pthread_create(&t, NULL, free_all, p);
    pthread_join(t, NULL);
    profile_t pr = dump_and_read();
    CHECK(pr.site[SITE_SMALL].live == 0 && pr.site[SITE_SMALL].allocs == 50);
    mallet_stats_get(&b);
    CHECK(b.remote_frees == a.remote_frees + 50);
    CHECK(b.allocated < a.allocated);
    remove_dir();
}

// A large block resized stays one block for the profiler: its sample keeps
// the stack of the allocation and takes the new size. (The checker builds
// resize by a new block and a copy: the new block is sampled at the realloc.)
static uint64_t live_bytes_of(const profile_t *pr, int a, int b)
{
    return pr->site[a].live_bytes + pr->site[b].live_bytes;
}

TEST(a_large_realloc_moves_its_sample)
{
    profile_on();
    void *p = site_large();
    p = site_realloc(p, 8 << 20);
    CHECK(p != NULL);
    profile_t pr = dump_and_read();
    CHECK(pr.site[SITE_LARGE].live + pr.site[SITE_REALLOC].live == 1);
    CHECK(live_bytes_of(&pr, SITE_LARGE, SITE_REALLOC) == 8 << 20);
#if !MALLET_TEST_CHECKER_BUILD
    CHECK(pr.site[SITE_LARGE].live == 1);
#endif
    p = site_realloc(p, 2 << 20);
    pr = dump_and_read();
    CHECK(pr.site[SITE_LARGE].live + pr.site[SITE_REALLOC].live == 1);
    CHECK(live_bytes_of(&pr, SITE_LARGE, SITE_REALLOC) == 2 << 20);
    mallet_free(p);
    pr = dump_and_read();
    CHECK(pr.site[SITE_LARGE].live + pr.site[SITE_REALLOC].live == 0);
    remove_dir();
}

TEST(statistics_stay_exact_with_every_allocation_sampled)
{
    profile_on();
    mallet_stats_t a, b;
    mallet_stats_get(&a);
    void *p[100];
    for (int i = 0; i < 100; i++)
        p[i] = site_small();
    mallet_stats_get(&b);
    CHECK(b.malloc_calls == a.malloc_calls + 100);
    CHECK(b.allocated >= a.allocated + 100 * 100);
    CHECK(b.threads == 1);
    for (int i = 0; i < 100; i++)
        mallet_free(p[i]);
    mallet_stats_get(&b);
    CHECK(b.free_calls == a.free_calls + 100);
    CHECK(b.allocated == a.allocated);
    remove_dir();
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

TEST(dump_without_a_path_numbers_its_files)
{
    profile_on();
    void *p = site_small();
    CHECK(mallet_prof_dump(NULL) == 0);
    CHECK(mallet_prof_dump(NULL) == 0);
    char path[128];
    snprintf(path, sizeof path, "%s/mallet.%d.2.heap", dir, (int)getpid());
    CHECK(exists(path));
    CHECK(read_profile(path).site[SITE_SMALL].live == 1);
    snprintf(path, sizeof path, "%s/no/such/dir/x.heap", dir);
    errno = 0;
    CHECK(mallet_prof_dump(path) == -1 && errno == ENOENT);
    mallet_free(p);
    remove_dir();
}

TEST(dump_with_profiling_never_on_says_einval)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/mallet-never-%d.heap", (int)getpid());
    errno = 0;
    CHECK(mallet_prof_dump(path) == -1 && errno == EINVAL);
    CHECK(!exists(path));
}

TEST(text_options_read_back_and_refuse_what_does_not_fit)
{
    char buf[16];
    CHECK(mallet_option_get_text("prof_dir", buf, sizeof buf) == 1 && strcmp(buf, ".") == 0);
    CHECK(mallet_option_set_text("prof_dir", "/var/tmp/p"));
    CHECK(mallet_option_get_text("prof_dir", buf, 5) == 4 && strcmp(buf, "/var") == 0);
    CHECK(!mallet_option_set_text("no_such_option", "x"));
    CHECK(mallet_option_get_text("no_such_option", buf, sizeof buf) == (size_t)-1);
    static char longer[2000];
    memset(longer, 'a', sizeof longer - 1);
    CHECK(!mallet_option_set_text("prof_dir", longer));
    CHECK(mallet_option_get_text("prof_dir", buf, sizeof buf) == 10);
    CHECK(mallet_option_get("prof_dir") == -1);
}

TEST(the_peak_file_follows_new_peaks_only)
{
    profile_on();
    CHECK(mallet_option_set("prof_peak", 10));
    char path[128];
    snprintf(path, sizeof path, "%s/mallet.%d.peak.heap", dir, (int)getpid());
    void *p[64];
    for (int i = 0; i < 64; i++)
        p[i] = mallet_malloc(64 << 10);        // 4 MiB live
    CHECK(exists(path));
    profile_t pr = read_profile(path);
    CHECK(pr.ok && pr.b1 >= (uint64_t)58 << 16 && pr.b1 <= (uint64_t)64 << 16);
    for (int i = 0; i < 64; i++)
        mallet_free(p[i]);
    for (int i = 0; i < 32; i++)
        p[i] = mallet_malloc(64 << 10);        // 2 MiB: no new peak
    CHECK(read_profile(path).b1 == pr.b1);
    for (int i = 0; i < 32; i++)
        mallet_free(p[i]);
    remove_dir();
}

TEST(a_fork_child_writes_its_own_exit_profile)
{
    profile_on();
    CHECK(mallet_option_set("prof_at_exit", 1));
    void *s[3];
    for (int i = 0; i < 3; i++)
        s[i] = site_small();
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; i < 2; i++)
            site_mid();
        mallet_free(s[0]);
        exit(0);                               // destructors run: the exit profile
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char path[128];
    snprintf(path, sizeof path, "%s/mallet.%d.exit.heap", dir, (int)pid);
    profile_t pr = read_profile(path);
    CHECK(pr.ok);
    CHECK(pr.site[SITE_SMALL].live == 2 && pr.site[SITE_MID].live == 2);
    profile_t mine = dump_and_read();
    CHECK(mine.site[SITE_SMALL].live == 3 && mine.site[SITE_MID].live == 0);
    mallet_option_set("prof_at_exit", 0);
    remove_dir();
}

// The unwinder runs inside malloc, so it must not call malloc itself. This
// program's own malloc (glibc's underneath) counts the calls made while
// libmallet samples every allocation: libmallet calls none, so any would be
// the unwinder's. Sanitizers and memcheck bring a malloc of their own.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static int counting, calls;

__attribute__((visibility("default"))) void *malloc(size_t n)
{
    calls += __atomic_load_n(&counting, __ATOMIC_RELAXED);
    return __libc_malloc(n);
}

__attribute__((visibility("default"))) void *calloc(size_t n, size_t m)
{
    calls += __atomic_load_n(&counting, __ATOMIC_RELAXED);
    return __libc_calloc(n, m);
}

__attribute__((visibility("default"))) void *realloc(void *p, size_t n)
{
    calls += __atomic_load_n(&counting, __ATOMIC_RELAXED);
    return __libc_realloc(p, n);
}

TEST(the_unwinder_calls_no_malloc)
{
    if (test_under_valgrind())
        TEST_SKIP("memcheck replaces malloc");
    // (A single-threaded process: no purger thread starts, whose
    // pthread_create would allocate.)
    profile_on();
    __atomic_store_n(&counting, 1, __ATOMIC_RELAXED);
    void *p[300];
    for (int i = 0; i < 300; i++)
        p[i] = i % 3 == 0 ? site_small() : i % 3 == 1 ? site_mid() : site_large();
    for (int i = 0; i < 300; i++)
        mallet_free(p[i]);
    __atomic_store_n(&counting, 0, __ATOMIC_RELAXED);
    CHECK(calls == 0);
    profile_t pr = dump_and_read();
    CHECK(pr.site[SITE_SMALL].allocs == 100 && pr.site[SITE_LARGE].allocs == 100);
    remove_dir();
}
#endif

// The fast walk (a rule per return address, kept) against libgcc's unwinder
// on the same stacks: recursion at several depths, and a comparator called
// from inside libc's qsort (code of another object, without frame pointers).
void mallet__prof_unwind_both(uintptr_t *fast, uint32_t *nfast, uintptr_t *slow, uint32_t *nslow, uint32_t max);

static int walks, walks_same, walks_fast;

__attribute__((noinline)) static void compare_walks(void)
{
    uintptr_t fast[128], slow[128];
    uint32_t nf, ns, j = 0;
    mallet__prof_unwind_both(fast, &nf, slow, &ns, 128);
    walks++;
    if (nf == 0)
        return;             // the fast walk declined: libgcc's is used
    walks_fast++;
    // Each walk starts in mallet__prof_unwind_both; the callers must agree.
    while (j < ns && (nf < 2 || slow[j] != fast[1]))
        j++;
    bool same = nf >= 2 && j < ns && nf - 1 == ns - j;
    for (uint32_t i = 1; same && i < nf; i++)
        same = fast[i] == slow[j + i - 1];
    walks_same += same;
}

__attribute__((noinline)) static int recurse(int n)
{
    if (n == 0) {
        compare_walks();
        return 0;
    }
    return (int)(uintptr_t)kept((void *)(uintptr_t)recurse(n - 1)) + 1;
}

static int by_value(const void *a, const void *b)
{
    compare_walks();
    return *(const int *)a - *(const int *)b;
}

static void *walk_in_thread(void *arg)
{
    (void)arg;
    recurse(7);
    return NULL;
}

TEST(the_fast_walk_gives_the_stacks_libgcc_gives)
{
    for (int d = 0; d < 40; d += 3)
        recurse(d);
    int v[] = { 5, 3, 9, 1, 7 };
    qsort(v, 5, sizeof v[0], by_value);
    pthread_t t;
    pthread_create(&t, NULL, walk_in_thread, NULL);
    pthread_join(t, NULL);
    fprintf(stderr, "  %d walks, %d fast, %d the same\n", walks, walks_fast, walks_same);
    CHECK(walks_same == walks_fast);
#if defined(__x86_64__)
    CHECK(walks_fast == walks);
#endif
}

// Before main: libmallet starts up, samples and unwinds from a constructor.
// The test runs this program again with profiling on from the environment
// and a test name that matches nothing, so the run is start-up and exit.
static void *early[5];

__attribute__((constructor)) static void allocate_before_main(void)
{
    if (getenv("TEST_PROF_EARLY"))
        for (int i = 0; i < 5; i++)
            early[i] = site_mid();
}

TEST(samples_taken_before_main_reach_the_exit_profile)
{
    char exe[256], path[128];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    CHECK(n > 0);
    exe[n > 0 ? n : 0] = 0;
    make_dir();
    pid_t pid = fork();
    if (pid == 0) {
        setenv("TEST_PROF_EARLY", "1", 1);
        setenv("MALLET_PROF", "1", 1);
        setenv("MALLET_PROF_SAMPLE_KB", "0", 1);
        setenv("MALLET_PROF_DIR", dir, 1);
        execl(exe, exe, "no test has this name", (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    snprintf(path, sizeof path, "%s/mallet.%d.exit.heap", dir, (int)pid);
    profile_t pr = read_profile(path);
    CHECK(pr.ok && pr.site[SITE_MID].live == 5);
    remove_dir();
}

// Threads sample without a pause while the main thread forks: whatever a
// thread held when the fork came, the child samples, frees and writes.
// The threads' blocks are kept in a global array, so a child (where the
// threads are gone) can still reach them: memcheck's leak check runs there.
static int stop;
static void *sampled[2][16];

static void *sampler(void *arg)
{
    void **keep = sampled[(uintptr_t)arg];
    for (unsigned i = 0; !__atomic_load_n(&stop, __ATOMIC_RELAXED); i++) {
        mallet_free(keep[i % 16]);
        keep[i % 16] = (i & 7) == 0 ? site_large() : site_small();
    }
    for (int i = 0; i < 16; i++)
        mallet_free(keep[i]);
    return NULL;
}

TEST(fork_beside_sampling_threads_leaves_the_child_able_to_profile)
{
    profile_on();
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, sampler, (void *)(uintptr_t)i);
    int rounds = test_under_valgrind() ? 10 : 200, bad = 0;
    char path[128];
    snprintf(path, sizeof path, "%s/child.heap", dir);
    for (int r = 0; r < rounds; r++) {
        pid_t pid = fork();
        if (pid == 0) {
            void *p[20];
            for (int i = 0; i < 20; i++)
                p[i] = site_mid();
            profile_t pr;
            if (mallet_prof_dump(path) != 0 || !(pr = read_profile(path)).ok || pr.site[SITE_MID].live < 20)
                test_child_exit(1);
            for (int i = 0; i < 20; i++)
                mallet_free(p[i]);
            test_child_exit(0);
        }
        int status;
        waitpid(pid, &status, 0);
        bad += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK(bad == 0);
    remove_dir();
}
