// SPDX-License-Identifier: MIT
//
// mallet.c -- the `mallet` command: verb dispatch, the overall help, and
// `mallet bench`, which runs the benchmark suite of the source tree
// (bench/run.sh) with a clock on its progress lines.
//
// Verbs live in their own files: run.c, record.c (trace), replay.c,
// heapmap.c, profile.c. The hidden verb __replay-child is how `mallet replay` runs an
// allocator under LD_PRELOAD: the same binary, re-executed.
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mallet VERB [OPTIONS] [ARGS]\n"
            "\n"
            "  run      run a program on an allocator      mallet run [-a NAME] [--stats] -- CMD ...\n"
            "  trace    record a program's allocations      mallet trace -o FILE -- CMD ...\n"
            "  replay   replay traces, check, measure       mallet replay [-a NAME,...] [-r REPS] [--threads] TRACE ...\n"
            "  bench    run the benchmark suite             mallet bench [--quick]\n"
            "  heapmap  draw a teach heap after a trace     mallet heapmap -a NAME [-s STEP] -o FILE.svg TRACE\n"
            "  profile  profile a program's heap on mallet  mallet profile [-o PREFIX] [--rate KB] -- CMD ...\n"
            "  symbolize source lines for report frames     mallet symbolize [FILE...]\n"
            "\n"
            "`mallet VERB --help` tells more; `mallet --version` prints the version.\n"
            "Allocators: ");
    tool_alloc_list(f);
    fprintf(f, "\n");
}

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: mallet bench [--quick]\n"
            "\n"
            "Run every benchmark section of the source tree (bench/run.sh), showing\n"
            "progress, and write bench/results.md and the plots in bench/plots/.\n"
            "Installs gnuplot-nox first when gnuplot is missing (needs root).\n"
            "\n"
            "  --quick   a short run: fewer repetitions, smaller inputs\n");
}

static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    char buf[4096];
    struct stat st;
    while (path && *path) {
        size_t n = strcspn(path, ":");
        if (n && snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, prog) < (int)sizeof buf
            && stat(buf, &st) == 0 && (st.st_mode & S_IXUSR))
            return true;
        path += n + (path[n] == ':');
    }
    return false;
}

static int run_quiet(char *const argv[])
{
    pid_t pid = fork();
    if (pid == 0) {
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid < 0 ? -1 : tool_wait("mallet bench", pid, argv[0], "glibc");
}

static void ensure_gnuplot(void)
{
    if (on_path("gnuplot"))
        return;
    if (geteuid() != 0 || !on_path("apt-get")) {
        fprintf(stderr, "mallet bench: gnuplot is missing, plots will be skipped (apt-get install gnuplot-nox)\n");
        return;
    }
    fprintf(stderr, "mallet bench: installing gnuplot-nox for the plots\n");
    char *install[] = { "apt-get", "install", "-y", "-qq", "gnuplot-nox", NULL };
    char *update[] = { "apt-get", "update", "-qq", NULL };
    if (run_quiet(install) != 0 && (run_quiet(update) != 0 || run_quiet(install) != 0))
        fprintf(stderr, "mallet bench: could not install gnuplot-nox; plots will be skipped\n");
}

int tool_bench(int argc, char **argv)
{
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            bench_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--quick")) {
            quick = true;
        } else {
            fprintf(stderr, "mallet bench: unknown argument '%s'\n", argv[i]);
            bench_usage(stderr);
            return 2;
        }
    }
    char script[4096];
    const char *rel[] = { "../bench/run.sh", NULL };
    if (!tool_find_product(script, sizeof script, rel)) {
        fprintf(stderr, "mallet bench: bench/run.sh not found next to %s: the suite runs from a source tree\n",
                tool_exe_dir());
        return 2;
    }
    ensure_gnuplot();
    // The sections run from the source tree: name the build folder relative
    // to it when it is inside (the commands printed in results.md stay short).
    if (!getenv("BUILD")) {
        char root[4096];
        const char *dir = tool_exe_dir();
        snprintf(root, sizeof root, "%s", script);
        for (int up = 0; up < 2; up++)
            *strrchr(root, '/') = 0;      // .../bench/run.sh -> the tree
        size_t n = strlen(root);
        setenv("BUILD", !strncmp(dir, root, n) && dir[n] == '/' ? dir + n + 1 : dir, 1);
    }
    int p[2];
    if (pipe(p) != 0) {
        fprintf(stderr, "mallet bench: pipe: %s\n", strerror(errno));
        return 1;
    }
    fflush(NULL);
    double start = tool_now();
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        close(p[1]);
        execl("/bin/bash", "bash", script, quick ? "--quick" : NULL, (char *)NULL);
        fprintf(stderr, "mallet bench: cannot run %s: %s\n", script, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        fprintf(stderr, "mallet bench: fork: %s\n", strerror(errno));
        return 1;
    }
    // Progress: each line of the suite's stderr, stamped with the time so far.
    FILE *in = fdopen(p[0], "r");
    char line[4096];
    while (in && fgets(line, sizeof line, in))
        fprintf(stderr, "[%5.0fs] %s", tool_now() - start, line);
    if (in)
        fclose(in);
    int status = tool_wait("mallet bench", pid, "bench/run.sh", "glibc");
    fprintf(stderr, "mallet bench: %s after %.0f s\n", status ? "finished with failures" : "done",
            tool_now() - start);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *verb = argv[1];
    if (!strcmp(verb, "-h") || !strcmp(verb, "--help") || !strcmp(verb, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(verb, "--version")) {
        printf("mallet %s\n", mallet_version());
        return 0;
    }
    static const struct {
        const char *name;                     // the verb
        int (*fn)(int, char **);              // its implementation, given argv from the verb on
    } verbs[] = {
        { "run", tool_run },         { "trace", tool_trace },     { "replay", tool_replay },
        { "bench", tool_bench },     { "heapmap", tool_heapmap }, { "profile", tool_profile },
        { "symbolize", tool_symbolize },
        { "__replay-child", tool_replay_child },
    };
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (!strcmp(verb, verbs[i].name))
            return verbs[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mallet: unknown verb '%s'\n", verb);
    usage(stderr);
    return 2;
}
