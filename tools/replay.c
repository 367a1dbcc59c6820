// SPDX-License-Identifier: MIT
//
// replay.c -- `mallet replay`: every trace on every allocator, checked,
// measured, scored.
//
// Each (trace, allocator) pair runs in a child process, so an allocator that
// crashes is reported as its crash and the next pair still runs:
//   - libmallet and the teach designs are linked in: the child is a plain
//     fork and calls them directly. A teach footprint is exact: footprint()
//     (break + mmap).
//   - glibc and the peers run in this same binary re-executed in a hidden
//     mode (`mallet __replay-child`) under LD_PRELOAD.
// libmallet, glibc and the peers are measured alike, by RSS: the peak RSS
// of the checked pass minus the RSS just before it, when the trace and the
// replayer's tables are already resident (so the replayer's own memory is
// not counted). Every payload byte is written in that pass, so memory
// handed out is memory touched. libmallet's `resident` statistic (mapped
// and not purged, touched or not) is kept beside it, for the CSV.
// The child sends a replay_result_t back through a pipe.
//
// With --threads each thread of the recording replays on a thread of its
// own (engine_threads.c); a teach design, which has no locks of its own,
// is called under one lock then, as its preload build is.
//
// Score, per trace, as the CS:APP malloc lab: 0.6 * util + 0.4 *
// min(1, throughput / REFERENCE_OPS), REFERENCE_OPS below.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine.h"

// The throughput that earns the full 40%: 20 million ops/s, about what
// glibc reaches on the shipped traces on a 2-core x86-64 machine.
#define REFERENCE_OPS 20e6
#define DEFAULT_REPS  5
#define MAX_ALLOCS    32
// mallet_stats_get merges every thread's counters (tens of microseconds):
// the resident statistic is sampled every this many ops, not after each.
#define MALLET_STATS_EVERY 1024

typedef enum { FORMAT_TEXT, FORMAT_MD } format_t;

static int trace_width = 24;          // text tables: the longest trace name

typedef struct totals {
    double util_sum;                  // sum of per-trace utilizations
    double seconds;                   // sum of per-trace replay times
    uint64_t ops;                     // ops over all traces
    int traces;                       // traces that replayed cleanly
    int failed;                       // traces that failed a check or crashed
} totals_t;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mallet replay [-a NAME,...] [-r REPS] [--threads] [--timeout S] [--md] [--csv FILE]\n"
            "                     TRACE...\n"
            "\n"
            "Replay CS:APP malloc-lab traces (plain, .gz or .zst) on each allocator,\n"
            "checking every block (alignment, no overlap, payload intact through\n"
            "realloc) and reporting utilization, throughput and the malloc-lab score.\n"
            "\n"
            "  -a NAME,...  allocators (default: mallet, every teach design, glibc);\n"
            "               valid: ");
    tool_alloc_list(f);
    fprintf(f,
            "\n"
            "  -r REPS      timed repetitions; throughput is their median (default %d;\n"
            "               fewer once the passes have taken %.0f s)\n"
            "  --threads    replay each thread of the recording (ops ending in @T) on a\n"
            "               thread of its own; an op waits for the op before it on the\n"
            "               same block, whichever thread made that one (teach designs\n"
            "               run under one lock)\n"
            "  --timeout S  give up on a trace and allocator after S seconds\n"
            "  --md         print Markdown tables\n"
            "  --csv FILE   also write one CSV row per trace and allocator to FILE (its\n"
            "               last column: the threads the trace was replayed on)\n"
            "\n"
            "util  = peak live payload / peak footprint. Footprint: teach designs\n"
            "        'exact' (break + mmap); mallet, glibc and the peers 'RSS' (peak RSS\n"
            "        minus the RSS before the first op; every payload byte is written).\n"
            "        The CSV adds libmallet's own 'resident' statistic.\n"
            "score = 0.6 * util + 0.4 * min(1, ops per second / %.0f million).\n",
            DEFAULT_REPS, TIME_BUDGET, REFERENCE_OPS / 1e6);
}

// --- the in-process backends ------------------------------------------------------

static const teach_allocator_t *cur_teach;
static pthread_mutex_t teach_lock = PTHREAD_MUTEX_INITIALIZER;  // --threads: one design call at a time

static size_t teach_footprint(void)
{
    return cur_teach->footprint();
}

static void *teach_malloc_locked(size_t n)
{
    pthread_mutex_lock(&teach_lock);
    void *p = cur_teach->malloc(n);
    pthread_mutex_unlock(&teach_lock);
    return p;
}

static void teach_free_locked(void *p)
{
    pthread_mutex_lock(&teach_lock);
    cur_teach->free(p);
    pthread_mutex_unlock(&teach_lock);
}

static void *teach_realloc_locked(void *p, size_t n)
{
    pthread_mutex_lock(&teach_lock);
    void *q = cur_teach->realloc(p, n);
    pthread_mutex_unlock(&teach_lock);
    return q;
}

static size_t teach_footprint_locked(void)
{
    pthread_mutex_lock(&teach_lock);
    size_t f = cur_teach->footprint();
    pthread_mutex_unlock(&teach_lock);
    return f;
}

static size_t mallet_footprint(void)
{
    mallet_stats_t s;
    mallet_stats_get(&s);
    return s.resident;
}

static backend_t backend_for(const alloc_desc_t *a, bool threads)
{
    if (a->kind == ALLOC_TEACH) {
        cur_teach = a->teach;
        if (threads)
            return (backend_t){ a->name, teach_malloc_locked, teach_free_locked, teach_realloc_locked,
                                teach_footprint_locked, 1, a->teach->reset };
        return (backend_t){ a->name, a->teach->malloc, a->teach->free, a->teach->realloc,
                            teach_footprint, 1, a->teach->reset };
    }
    if (a->kind == ALLOC_MALLET)
        return (backend_t){ a->name, mallet_malloc, mallet_free, mallet_realloc,
                            mallet_footprint, MALLET_STATS_EVERY, NULL };
    return (backend_t){ a->name, malloc, free, realloc, NULL, 0, NULL };
}

// --- RSS, read without malloc (the child's heap is the one being measured) ----------

static uint64_t status_kb(const char *field)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strstr(buf, field);
    return p ? strtoull(p + strlen(field), NULL, 10) : 0;
}

static void reset_peak_rss(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        // Older kernels refuse: the peak then counts from start-up, which
        // the trace loading never exceeds (it only grows).
        ssize_t ignored = write(fd, "5", 1);
        (void)ignored;
        close(fd);
    }
}

static void send_result(int fd, const replay_result_t *r)
{
    const char *p = (const char *)r;
    size_t n = sizeof *r;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= (size_t)w;
    }
}

// The passes one child makes: prepare, the checked pass, the timed passes;
// on the recorded threads or on this one.
static bool prepare(const trace_t *t, bool threads)
{
    return threads ? engine_prepare_threads(t) : engine_prepare(t);
}

static bool check(const trace_t *t, const backend_t *b, replay_result_t *r, bool threads)
{
    return threads ? engine_check_threads(t, b, r) : engine_check(t, b, r, NULL, NULL);
}

static void time_passes(const trace_t *t, const backend_t *b, int reps, replay_result_t *r, bool threads)
{
    if (threads)
        engine_time_threads(t, b, reps, r);
    else
        engine_time(t, b, reps, r);
}

// mallet __replay-child FD REPS NAME TRACE [threads]: the preloaded
// allocator is this process's malloc.
int tool_replay_child(int argc, char **argv)
{
    if (argc != 5 && !(argc == 6 && !strcmp(argv[5], "threads")))
        return 2;
    int fd = atoi(argv[1]), reps = atoi(argv[2]);
    bool threads = argc == 6;
    alloc_desc_t a = { .name = argv[3], .kind = ALLOC_GLIBC };
    trace_t t;
    replay_result_t r;
    trace_warnings = false;
    if (!trace_load(argv[4], &t) || !prepare(&t, threads))
        return 1;
    backend_t b = backend_for(&a, threads);
    uint64_t base_kb = status_kb("VmRSS:");
    reset_peak_rss();
    if (!check(&t, &b, &r, threads))
        return 1;
    uint64_t peak_kb = status_kb("VmHWM:");
    r.peak_footprint = peak_kb > base_kb ? (peak_kb - base_kb) * 1024 : 0;
    strcpy(r.measure, "RSS");
    time_passes(&t, &b, reps, &r, threads);
    send_result(fd, &r);
    return 0;
}

// --- the parent ------------------------------------------------------------------------

// In a forked child. libmallet is measured by RSS, like glibc and the
// peers, so the three compare; its own `resident` statistic (pages mapped
// and not purged, touched or not) is sampled too and goes to the CSV.
static int run_in_process(const trace_t *t, const alloc_desc_t *a, int reps, bool threads, int fd)
{
    backend_t b = backend_for(a, threads);
    replay_result_t r;
    if (!prepare(t, threads))
        return 1;
    uint64_t base_kb = status_kb("VmRSS:");
    reset_peak_rss();
    if (!check(t, &b, &r, threads))
        return 1;
    if (a->kind == ALLOC_TEACH) {
        strcpy(r.measure, "exact");
    } else {
        uint64_t peak_kb = status_kb("VmHWM:");
        r.peak_resident = r.peak_footprint;
        r.peak_footprint = peak_kb > base_kb ? (peak_kb - base_kb) * 1024 : 0;
        strcpy(r.measure, "RSS");
    }
    time_passes(t, &b, reps, &r, threads);
    send_result(fd, &r);
    return 0;
}

// Replay t on a in a child; false when it failed (message printed).
static bool replay_one(const trace_t *t, const alloc_desc_t *a, int reps, bool threads, unsigned timeout,
                       replay_result_t *r)
{
    char preload[4096], fdbuf[16], repbuf[16];
    int p[2];
    bool in_process = a->kind == ALLOC_MALLET || a->kind == ALLOC_TEACH;
    if (!in_process && !tool_alloc_preload("mallet replay", a, preload, sizeof preload))
        return false;
    if (pipe2(p, O_CLOEXEC) != 0) {
        fprintf(stderr, "mallet replay: pipe: %s\n", strerror(errno));
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "mallet replay: fork: %s\n", strerror(errno));
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        close(p[0]);
        alarm(timeout);                   // kept across exec; 0 means none
        if (in_process)
            _exit(run_in_process(t, a, reps, threads, p[1]));
        fcntl(p[1], F_SETFD, 0);          // the re-executed child writes to it
        snprintf(fdbuf, sizeof fdbuf, "%d", p[1]);
        snprintf(repbuf, sizeof repbuf, "%d", reps);
        if (preload[0])
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execl("/proc/self/exe", "mallet", "__replay-child", fdbuf, repbuf, a->name, t->path,
              threads ? "threads" : (char *)NULL, (char *)NULL);
        fprintf(stderr, "mallet replay: cannot re-execute /proc/self/exe: %s\n", strerror(errno));
        _exit(1);
    }
    close(p[1]);
    memset(r, 0, sizeof *r);
    size_t got = 0;
    while (got < sizeof *r) {
        ssize_t n = read(p[0], (char *)r + got, sizeof *r - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(p[0]);
    int raw = 0, status;
    while (waitpid(pid, &raw, 0) < 0 && errno == EINTR)
        continue;
    if (timeout && WIFSIGNALED(raw) && WTERMSIG(raw) == SIGALRM) {
        fprintf(stderr, "mallet replay: %s on %s: timed out after %u s\n", t->path, a->name, timeout);
        snprintf(r->measure, sizeof r->measure, "timeout");
        r->ok = 0;
        return false;
    }
    status = tool_status("mallet replay", raw, t->path, a->name);
    if (status != 0 || got != sizeof *r || !r->ok) {
        if (status == 0)
            fprintf(stderr, "mallet replay: %s on %s: no result from the replay\n", t->path, a->name);
        r->ok = 0;
        return false;
    }
    return true;
}

static double score(double util, double ops_per_sec)
{
    double tput = ops_per_sec / REFERENCE_OPS;
    return 0.6 * util + 0.4 * (tput < 1 ? tput : 1);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void print_header(format_t fmt, int reps)
{
    if (fmt == FORMAT_MD) {
        printf("| trace | allocator | ops | util | peak live | peak footprint | footprint measure | Mops/s (median of %d) | score |\n", reps);
        printf("|---|---|--:|--:|--:|--:|---|--:|--:|\n");
    } else {
        printf("%-*s %-13s %10s %6s %12s %14s %-9s %9s %6s\n", trace_width, "trace", "allocator", "ops", "util",
               "peak live", "peak footprint", "measure", "Mops/s", "score");
    }
}

static void print_row(format_t fmt, const char *trace, const char *alloc, const replay_result_t *r,
                      const char *failure)
{
    if (failure) {
        if (fmt == FORMAT_MD)
            printf("| %s | %s | | | | | | | %s |\n", trace, alloc, failure);
        else
            printf("%-*s %-13s %s\n", trace_width, trace, alloc, failure);
        return;
    }
    double util = r->peak_footprint ? (double)r->peak_live / (double)r->peak_footprint : 0;
    if (fmt == FORMAT_MD)
        printf("| %s | %s | %llu | %.1f%% | %llu | %llu | %s | %.2f | %.2f |\n", trace, alloc,
               (unsigned long long)r->ops, 100 * util, (unsigned long long)r->peak_live,
               (unsigned long long)r->peak_footprint, r->measure, r->ops_per_sec / 1e6,
               score(util, r->ops_per_sec));
    else
        printf("%-*s %-13s %10llu %5.1f%% %12llu %14llu %-9s %9.2f %6.2f\n", trace_width, trace, alloc, (unsigned long long)r->ops, 100 * util, (unsigned long long)r->peak_live,
           (unsigned long long)r->peak_footprint, r->measure, r->ops_per_sec / 1e6,
           score(util, r->ops_per_sec));
}

static int parse_allocs(const char *list, alloc_desc_t *out, char **names_store)
{
    int n = 0;
    char *copy = strdup(list), *save = NULL;
    *names_store = copy;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (n == MAX_ALLOCS) {
            fprintf(stderr, "mallet replay: at most %d allocators\n", MAX_ALLOCS);
            return -1;
        }
        if (!tool_alloc_lookup("mallet replay", tok, &out[n]))
            return -1;
        n++;
    }
    return n;
}

static int default_allocs(alloc_desc_t *out)
{
    int n = 0;
    out[n++] = (alloc_desc_t){ .name = "mallet", .kind = ALLOC_MALLET };
    for (const teach_allocator_t *const *t = teach_allocators; *t && n < MAX_ALLOCS - 1; t++)
        out[n++] = (alloc_desc_t){ .name = (*t)->name, .kind = ALLOC_TEACH, .teach = *t };
    out[n++] = (alloc_desc_t){ .name = "glibc", .kind = ALLOC_GLIBC };
    return n;
}

int tool_replay(int argc, char **argv)
{
    alloc_desc_t allocs[MAX_ALLOCS];
    int n_allocs = -2, reps = DEFAULT_REPS, first = argc;
    unsigned timeout = 0;
    bool threads = false;
    format_t fmt = FORMAT_TEXT;
    const char *csv_path = NULL;
    char *names = NULL;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            usage(stdout);
            free(names);
            return 0;
        } else if (!strcmp(s, "-a") && i + 1 < argc) {
            free(names);
            n_allocs = parse_allocs(argv[++i], allocs, &names);
            if (n_allocs < 0) {
                free(names);
                return 2;
            }
        } else if (!strcmp(s, "-r") && i + 1 < argc) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 64) {
                fprintf(stderr, "mallet replay: -r wants a number from 1 to 64, not '%s'\n", argv[i]);
                free(names);
                return 2;
            }
            reps = (int)v;
        } else if (!strcmp(s, "--timeout") && i + 1 < argc) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end || v < 1 || v > 86400) {
                fprintf(stderr, "mallet replay: --timeout wants seconds from 1 to 86400, not '%s'\n", argv[i]);
                free(names);
                return 2;
            }
            timeout = (unsigned)v;
        } else if (!strcmp(s, "--threads")) {
            threads = true;
        } else if (!strcmp(s, "--md")) {
            fmt = FORMAT_MD;
        } else if (!strcmp(s, "--csv") && i + 1 < argc) {
            csv_path = argv[++i];
        } else if (!strcmp(s, "--")) {
            first = i + 1;
            break;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "mallet replay: unknown or incomplete option '%s'\n", s);
            usage(stderr);
            free(names);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (first >= argc) {
        fprintf(stderr, "mallet replay: no trace given\n");
        usage(stderr);
        free(names);
        return 2;
    }
    if (n_allocs == -2)
        n_allocs = default_allocs(allocs);
    FILE *csv = NULL;
    if (csv_path) {
        csv = fopen(csv_path, "w");
        if (!csv) {
            fprintf(stderr, "mallet replay: %s: %s\n", csv_path, strerror(errno));
            free(names);
            return 2;
        }
        fprintf(csv, "trace,allocator,ops,peak_live,peak_footprint,measure,ops_per_sec,util,score,mallet_resident,threads\n");
    }
    for (int ti = first; ti < argc; ti++)
        if ((int)strlen(base_name(argv[ti])) > trace_width)
            trace_width = (int)strlen(base_name(argv[ti]));
    totals_t totals[MAX_ALLOCS] = { 0 };
    int status = 0;
    print_header(fmt, reps);
    for (int ti = first; ti < argc && status != 2; ti++) {
        trace_t t;
        if (!trace_load(argv[ti], &t)) {
            status = 2;                   // a malformed trace stops the replay
            break;
        }
        for (int ai = 0; ai < n_allocs; ai++) {
            replay_result_t r;
            const char *tn = base_name(t.path);
            if (!replay_one(&t, &allocs[ai], reps, threads, timeout, &r)) {
                print_row(fmt, tn, allocs[ai].name, NULL,
                          strcmp(r.measure, "timeout") ? "FAILED (see above)" : "timed out");
                totals[ai].failed++;
                status = status ? status : 1;
                continue;
            }
            print_row(fmt, tn, allocs[ai].name, &r, NULL);
            fflush(stdout);
            double util = r.peak_footprint ? (double)r.peak_live / (double)r.peak_footprint : 0;
            totals[ai].util_sum += util;
            totals[ai].ops += r.ops;
            totals[ai].seconds += r.ops_per_sec > 0 ? (double)r.ops / r.ops_per_sec : 0;
            totals[ai].traces++;
            if (csv)
                fprintf(csv, "%s,%s,%llu,%llu,%llu,%s,%.0f,%.4f,%.4f,%llu,%u\n", tn, allocs[ai].name,
                        (unsigned long long)r.ops, (unsigned long long)r.peak_live,
                        (unsigned long long)r.peak_footprint, r.measure, r.ops_per_sec, util,
                        score(util, r.ops_per_sec), (unsigned long long)r.peak_resident,
                        threads ? t.n_threads : 1);
        }
        trace_free(&t);
    }
    if (argc - first > 1 && status != 2) {
        if (fmt == FORMAT_MD) {
            printf("\n| allocator | traces | mean util | Mops/s (all ops / all time) | score |\n");
            printf("|---|--:|--:|--:|--:|\n");
        } else {
            printf("\n%-13s %6s %9s %9s %6s\n", "allocator", "traces", "mean util", "Mops/s", "score");
        }
        for (int ai = 0; ai < n_allocs; ai++) {
            const totals_t *s = &totals[ai];
            double util = s->traces ? s->util_sum / s->traces : 0;
            double tput = s->seconds > 0 ? (double)s->ops / s->seconds : 0;
            char failed[32] = "";
            if (s->failed)
                snprintf(failed, sizeof failed, " (%d failed)", s->failed);
            if (fmt == FORMAT_MD)
                printf("| %s | %d%s | %.1f%% | %.2f | %.2f |\n", allocs[ai].name, s->traces, failed,
                       100 * util, tput / 1e6, score(util, tput));
            else
                printf("%-13s %6d %8.1f%% %9.2f %6.2f%s\n", allocs[ai].name, s->traces, 100 * util,
                       tput / 1e6, score(util, tput), failed);
        }
    }
    if (csv)
        fclose(csv);
    free(names);
    return status;
}
