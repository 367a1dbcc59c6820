// SPDX-License-Identifier: MIT
//
// profile.c -- `mallet profile`: run a program on libmallet with its heap
// profiler on (src/prof/prof_dump.c), then turn the profiles it wrote into files
// for people: the profile itself (for google-pprof), a flame graph and a
// table of the top functions; or (--show) render one profile file.
//
// The library writes into a fresh temporary directory, so every file in it
// is this run's: mallet.PID.peak.heap (the largest heap, rewritten as it
// grows by MALLET_PROF_PEAK percent: 10 unless the environment says),
// mallet.PID.exit.heap (at exit) and mallet.PID.SEQ.heap (the program's own
// mallet_prof_dump(NULL) calls). Each becomes PREFIX.WHAT.{heap,svg,txt}
// for the process started and PREFIX.PID.WHAT.* for the others (forks, and
// what they ran), and the directory goes. The six files of the process
// started are removed before the run, so none is left from an earlier one.
// The command exits with the program's status, reporting a crash as
// `mallet run` does; when the program succeeded but a profile could not
// be read or written, with 1.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "prof.h"

#define VERB         "mallet profile"
#define TOP_SUMMARY  5                // functions in the summary on stderr

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mallet profile [-o PREFIX] [--rate KB] -- CMD [ARG...]\n"
            "       mallet profile --show FILE.heap [-o PREFIX]\n"
            "\n"
            "Run CMD on libmallet with its sampling heap profiler on, and write, for\n"
            "the heap at its peak and at exit:\n"
            "  PREFIX.peak.heap  PREFIX.exit.heap   the profiles (google-pprof reads them)\n"
            "  PREFIX.peak.svg   PREFIX.exit.svg    flame graphs of the in-use bytes by call stack\n"
            "  PREFIX.peak.txt   PREFIX.exit.txt    the top functions; at exit, also the blocks\n"
            "                                       never freed (possible leaks), by call stack\n"
            "A process CMD forks writes PREFIX.PID.peak.* and PREFIX.PID.exit.*; the\n"
            "profiles CMD dumps itself (mallet_prof_dump(NULL)) become PREFIX.N.*.\n"
            "\n"
            "  -o PREFIX    where the files go (default: mallet-profile)\n"
            "  --rate KB    one sample per KB KiB allocated, on average (default: the\n"
            "               library's, 512); smaller is finer and slower\n"
            "  --show FILE  render a profile already written: PREFIX.svg and PREFIX.txt\n"
            "\n"
            "Figures are estimates from the samples, scaled as google-pprof scales\n"
            "heap_v2 profiles. The peak profile is rewritten each time the heap grows\n"
            "by MALLET_PROF_PEAK percent (default here 10). Exits with CMD's status.\n");
}

// Write one of a profile's renderings to path; false (said) when it cannot.
static bool write_file(const char *path, const prof_t *p, report_kind_t kind, const char *what)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, VERB ": %s: %s\n", path, strerror(errno));
        return false;
    }
    bool ok = tool_ends_with(path, ".svg") ? flame_write_svg(p, what, f) : prof_write_text(p, kind, f);
    ok = fclose(f) == 0 && ok;
    if (!ok)
        fprintf(stderr, VERB ": %s: write failed\n", path);
    return ok;
}

static bool copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    int out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    char buf[65536];
    ssize_t n = 0;
    while (out >= 0 && (n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    bool ok = in >= 0 && out >= 0 && n == 0;
    if (!ok)
        fprintf(stderr, VERB ": cannot copy %s to %s: %s\n", from, to, strerror(errno));
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0 && ok) {
        fprintf(stderr, VERB ": %s: %s\n", to, strerror(errno));
        ok = false;
    }
    return ok;
}

// Read heap and write OUT.svg and OUT.txt (copy: first copy it to
// OUT.heap and read that, the file the user keeps and messages name): p
// holds the profile after, for the summary. False (said) on any failure.
static bool render(const char *heap, const char *out, bool copy, report_kind_t kind, const char *what, prof_t *p)
{
    char svg[PATH_MAX], txt[PATH_MAX], copied[PATH_MAX];
    snprintf(svg, sizeof svg, "%s.svg", out);
    snprintf(txt, sizeof txt, "%s.txt", out);
    snprintf(copied, sizeof copied, "%s.heap", out);
    memset(p, 0, sizeof *p);
    if ((copy && !copy_file(heap, copied)) || !prof_read(VERB, copy ? copied : heap, p))
        return false;
    if (!write_file(svg, p, kind, what) || !write_file(txt, p, kind, what))
        return false;
    fprintf(stderr, VERB ": wrote %s%s%s %s\n", copy ? copied : "", copy ? " " : "", svg, txt);
    return true;
}

static void summary_top(const prof_t *p, const char *what)
{
    size_t n;
    prof_func_t *top = prof_top(p, &n);
    if (!top || !n || top[0].flat <= 0) {
        free(top);
        return;
    }
    fprintf(stderr, VERB ": top functions %s:\n", what);
    for (size_t i = 0; i < n && i < TOP_SUMMARY && top[i].flat > 0; i++) {
        char h[32];
        fprintf(stderr, "  %6.2f%% %10s  %s\n", 100 * top[i].flat / p->est_bytes,
                tool_human((uint64_t)top[i].flat, h, sizeof h), p->names[top[i].func]);
    }
    free(top);
}

static int show(const char *file, const char *prefix)
{
    report_kind_t kind = tool_ends_with(file, ".exit.heap")   ? REPORT_EXIT
                       : tool_ends_with(file, ".peak.heap") ? REPORT_PEAK
                                                              : REPORT_SNAPSHOT;
    const char *what = kind == REPORT_EXIT ? "at exit" : kind == REPORT_PEAK ? "at peak" : "when dumped";
    prof_t p;
    if (!render(file, prefix, false, kind, what, &p)) {
        prof_free(&p);
        return 2;
    }
    char h[32];
    fprintf(stderr, VERB ": estimated in use %s: %s\n", what, tool_human((uint64_t)p.est_bytes, h, sizeof h));
    summary_top(&p, what);
    prof_free(&p);
    return 0;
}

// --- the run ---------------------------------------------------------------------

enum { PEAK, EXIT };                  // the two profiles every process may write, in this order

typedef struct found {
    long pid;                         // the process that wrote it
    long seq;                         // PEAK, EXIT, or EXIT + N for the Nth dump
    char name[NAME_MAX + 1];          // the file's name in the directory
} found_t;

// "mallet.PID.peak.heap", "mallet.PID.exit.heap", "mallet.PID.N.heap"
static bool parse_name(const char *name, found_t *f)
{
    char what[16], *tail = NULL;
    int end = -1;
    if (sscanf(name, "mallet.%ld.%15[a-z0-9].heap%n", &f->pid, what, &end) != 2 || end < 0 || name[end])
        return false;
    f->seq = !strcmp(what, "peak") ? PEAK : !strcmp(what, "exit") ? EXIT : EXIT + strtol(what, &tail, 10);
    snprintf(f->name, sizeof f->name, "%s", name);
    return !tail || (!*tail && f->seq > EXIT);
}

// The process started first, then by pid; in each, peak, exit, dumps.
static int cmp_found(const void *a, const void *b, void *started)
{
    const found_t *x = a, *y = b;
    long first = *(const long *)started;
    if (x->pid != y->pid)
        return x->pid == first ? -1 : y->pid == first ? 1 : (x->pid > y->pid) - (x->pid < y->pid);
    return (x->seq > y->seq) - (x->seq < y->seq);
}

// The profiles in dir, sorted.
static found_t *list_profiles(const char *dir, long started, size_t *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    size_t cap = 16;
    found_t *f = malloc(cap * sizeof *f);
    struct dirent *e;
    while (d && f && (e = readdir(d))) {
        if (*n == cap) {
            found_t *g = realloc(f, (cap *= 2) * sizeof *f);
            if (!g)
                break;
            f = g;
        }
        if (parse_name(e->d_name, &f[*n]))
            (*n)++;
    }
    if (d)
        closedir(d);
    if (f)
        qsort_r(f, *n, sizeof *f, cmp_found, &started);
    return f;
}

// The temporary directory and all in it (a peak file half written when
// the program died, too).
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    if (rmdir(dir) != 0)
        fprintf(stderr, VERB ": could not remove %s: %s\n", dir, strerror(errno));
}

static void remove_outputs(const char *prefix, const char *what)
{
    static const char *const ext[] = { "heap", "svg", "txt" };
    char path[PATH_MAX];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s.%s.%s", prefix, what, ext[i]);
        unlink(path);
    }
}

// What is said when the process started left its peak and exit profiles
// (found), and what they held (read: path set).
static void summary(const bool found[2], const prof_t read[2], const char *cmd)
{
    char h[32];
    if (!found[PEAK] && !found[EXIT]) {
        fprintf(stderr, VERB ": %s wrote no profile: it left by _exit, exec or a signal before a peak was"
                        " sampled, or libmallet was not its malloc (static and set-user-ID programs ignore"
                        " LD_PRELOAD)\n", cmd);
        return;
    }
    if (!found[PEAK])
        fprintf(stderr, VERB ": no peak profile: the heap never grew enough for one (a smaller --rate"
                        " samples more)\n");
    if (!found[EXIT])
        fprintf(stderr, VERB ": no exit profile: %s left by _exit, exec or a signal\n", cmd);
    if (read[PEAK].path || read[EXIT].path) {
        fprintf(stderr, VERB ": estimated in use:");
        if (read[PEAK].path)
            fprintf(stderr, " %s at peak%s", tool_human((uint64_t)read[PEAK].est_bytes, h, sizeof h),
                    read[EXIT].path ? "," : "");
        if (read[EXIT].path)
            fprintf(stderr, " %s at exit", tool_human((uint64_t)read[EXIT].est_bytes, h, sizeof h));
        fprintf(stderr, "\n");
    }
    if (read[PEAK].path)
        summary_top(&read[PEAK], "at peak");
    else if (read[EXIT].path)
        summary_top(&read[EXIT], "at exit");
}

// Render every profile found, then the summary. False when one could not
// be rendered.
static bool render_all(const char *dir, const found_t *f, size_t n, long started, const char *prefix,
                       const char *cmd)
{
    bool ok = true, found[2] = { false, false };
    prof_t kept[2] = { { 0 }, { 0 } };      // the started process's peak and exit
    for (size_t i = 0; i < n; i++) {
        bool mine = f[i].pid == started;
        char heap[PATH_MAX + sizeof f->name], out[PATH_MAX], what[32], tag[24];
        if (f[i].seq == PEAK || f[i].seq == EXIT)
            snprintf(tag, sizeof tag, f[i].seq == PEAK ? "peak" : "exit");
        else
            snprintf(tag, sizeof tag, "%ld", f[i].seq - EXIT);
        snprintf(heap, sizeof heap, "%s/%s", dir, f[i].name);
        if (mine)
            snprintf(out, sizeof out, "%s.%s", prefix, tag);
        else
            snprintf(out, sizeof out, "%s.%ld.%s", prefix, f[i].pid, tag);
        snprintf(what, sizeof what, f[i].seq > EXIT ? "at dump %s" : "at %s", tag);
        report_kind_t kind = f[i].seq == PEAK ? REPORT_PEAK : f[i].seq == EXIT ? REPORT_EXIT : REPORT_SNAPSHOT;
        prof_t p;
        bool rendered = render(heap, out, true, kind, what, &p);
        ok = ok && rendered;
        if (mine && f[i].seq <= EXIT) {
            found[f[i].seq] = true;
            if (rendered) {
                kept[f[i].seq] = p;
                continue;
            }
        }
        prof_free(&p);
    }
    if (!found[PEAK])
        remove_outputs(prefix, "peak");
    if (!found[EXIT])
        remove_outputs(prefix, "exit");
    summary(found, kept, cmd);
    prof_free(&kept[PEAK]);
    prof_free(&kept[EXIT]);
    return ok;
}

// The environment the library reads; false (said) when it cannot be set.
static bool set_env(const char *dir, const char *rate)
{
    char lib[PATH_MAX];
    alloc_desc_t a;
    if (!tool_alloc_lookup(VERB, "mallet", &a) || !tool_alloc_preload(VERB, &a, lib, sizeof lib)
        || !tool_preload_first(VERB, lib))
        return false;
    setenv("MALLET_PROF", "1", 1);
    setenv("MALLET_PROF_DIR", dir, 1);
    if (rate)
        setenv("MALLET_PROF_SAMPLE_KB", rate, 1);
    setenv("MALLET_PROF_PEAK", "10", 0);      // the user's own setting wins
    return true;
}

// Whether the files PREFIX.* can be made: found out before a long run, not after.
static bool prefix_writable(const char *prefix)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", prefix);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = 0;                       // "/name": the root
    else if (slash)
        *slash = 0;
    if (access(slash ? dir : ".", W_OK) == 0)
        return true;
    fprintf(stderr, VERB ": cannot write %s.*: %s: %s\n", prefix, slash ? dir : ".", strerror(errno));
    return false;
}

static int profile(char **cmd, const char *prefix, const char *rate)
{
    if (!prefix_writable(prefix))
        return 2;
    const char *tmp = getenv("TMPDIR");
    char made[PATH_MAX], dir[PATH_MAX];
    snprintf(made, sizeof made, "%s/mallet-profile.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    // Absolute: the program may change directory before it writes.
    if (!mkdtemp(made) || !realpath(made, dir)) {
        fprintf(stderr, VERB ": cannot make a directory for the profiles (%s): %s\n", made, strerror(errno));
        return 1;
    }
    remove_outputs(prefix, "peak");
    remove_outputs(prefix, "exit");
    if (!set_env(dir, rate)) {
        rmdir(dir);
        return 2;
    }
    pid_t pid = 0;
    int status = tool_command(VERB, cmd, "mallet", &pid);
    size_t n;
    found_t *found = list_profiles(dir, pid, &n);
    // A command that could not be run has been named already: no more to say.
    bool quiet = n == 0 && (status == 126 || status == 127);
    bool ok = found && (quiet || render_all(dir, found, n, pid, prefix, cmd[0]));
    if (!found)
        fprintf(stderr, VERB ": cannot list %s: %s\n", dir, strerror(errno));
    remove_dir(dir);
    free(found);
    return status ? status : !ok;
}

int tool_profile(int argc, char **argv)
{
    const char *prefix = "mallet-profile", *rate = NULL, *file = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            prefix = argv[++i];
        } else if (!strcmp(argv[i], "--rate") && i + 1 < argc) {
            rate = argv[++i];
            char *end;
            errno = 0;
            unsigned long long kb = strtoull(rate, &end, 10);
            // Up to 1 TiB between samples: the rate in bytes stays far inside 64 bits.
            if (!*rate || *end || *rate == '-' || errno || kb == 0 || kb > (1ull << 30)) {
                fprintf(stderr, VERB ": --rate wants a positive number of KiB, not '%s'\n", rate);
                return 2;
            }
        } else if (!strcmp(argv[i], "--show") && i + 1 < argc) {
            file = argv[++i];
        } else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, VERB ": unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (!*prefix) {
        fprintf(stderr, VERB ": -o wants a prefix for the file names\n");
        return 2;
    }
    if (file) {
        if (i < argc || rate) {
            fprintf(stderr, VERB ": --show renders a file: %s\n", rate ? "--rate is for a run" : "no command with it");
            return 2;
        }
        return show(file, prefix);
    }
    if (i >= argc) {
        fprintf(stderr, VERB ": no command given\n");
        usage(stderr);
        return 2;
    }
    return profile(argv + i, prefix, rate);
}
