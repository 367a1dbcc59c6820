// SPDX-License-Identifier: MIT
//
// record.c -- `mallet trace`: run a program with the trace recorder
// (build/libmallet-trace.so, tools/recorder/trace.c) preloaded, then list
// the traces it wrote.
//
// File naming (the recorder's rule): FILE is the trace of the program
// started; every other process -- a fork, or a program it runs -- writes
// FILE.PID, and an image that execs after writing its trace leaves the new
// image FILE.PID.N. Traces from an earlier recording under the same name
// are removed first so the list at the end is this run's.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mallet trace -o FILE -- CMD [ARG...]\n"
            "\n"
            "Record every malloc, free, calloc, realloc and aligned allocation of CMD\n"
            "(all threads) as a CS:APP malloc-lab trace in FILE. A process CMD forks\n"
            "or runs writes FILE.PID (FILE.PID.N after an exec). free(NULL) is\n"
            "written 'f -1' and realloc(NULL, n) 'r ID n'; the ops of every thread\n"
            "but the first end in '@T', the thread's number. Compress with\n"
            "`zstd FILE`; replay with `mallet replay FILE` (each thread on its own:\n"
            "`mallet replay --threads FILE`).\n"
            "\n"
            "Not recorded: allocations made before the recorder starts (their frees\n"
            "are skipped), alignment (an aligned allocation becomes 'a ID SIZE'),\n"
            "and anything after the program leaves through _exit or a signal (the\n"
            "trace of that process is then incomplete).\n");
}

// True for NAME.DIGITS or NAME.DIGITS.DIGITS.
static bool is_child_trace(const char *entry, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(entry, name, n) || entry[n] != '.')
        return false;
    const char *s = entry + n + 1;
    int groups = 0;
    while (*s) {
        if (*s < '0' || *s > '9')
            return false;
        while (*s >= '0' && *s <= '9')
            s++;
        groups++;
        if (*s == '.' && s[1])
            s++;
        else if (*s)
            return false;
    }
    return groups >= 1 && groups <= 2;
}

typedef void (*trace_file_fn)(const char *path);

static void each_trace(const char *file, trace_file_fn fn)
{
    char dir[PATH_MAX], path[PATH_MAX * 2];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    *slash = 0;
    const char *name = slash + 1;
    if (access(file, F_OK) == 0)
        fn(file);
    DIR *d = opendir(dir[0] ? dir : "/");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (is_child_trace(e->d_name, name)) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            fn(path);
        }
    closedir(d);
}

static void remove_trace(const char *path)
{
    unlink(path);
}

static void report_trace(const char *path)
{
    char head[128] = { 0 };
    unsigned long long hint = 0, ids = 0, ops = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, head, sizeof head - 1);
        close(fd);
        head[n > 0 ? n : 0] = 0;
    }
    if (sscanf(head, "%llu %llu %llu", &hint, &ids, &ops) == 3)
        fprintf(stderr, "mallet trace: wrote %s: %llu ops, %llu ids, peak %llu live bytes\n", path, ops, ids, hint);
    else
        fprintf(stderr, "mallet trace: wrote %s (incomplete: its process did not exit normally)\n", path);
}

int tool_trace(int argc, char **argv)
{
    const char *out = NULL;
    int i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            out = argv[++i];
        } else if (!strcmp(argv[i], "--")) {
            i++;
            break;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "mallet trace: unknown or incomplete option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            break;
        }
    }
    if (!out || !*out) {
        fprintf(stderr, "mallet trace: no output file (-o FILE)\n");
        usage(stderr);
        return 2;
    }
    if (i >= argc) {
        fprintf(stderr, "mallet trace: no command given\n");
        usage(stderr);
        return 2;
    }
    char lib[PATH_MAX], file[PATH_MAX * 2], cwd[PATH_MAX];
    const char *rel[] = { "libmallet-trace.so", TOOL_INSTALLED("mallet/libmallet-trace.so"), NULL };
    if (!tool_find_product(lib, sizeof lib, rel)) {
        fprintf(stderr, "mallet trace: the recorder libmallet-trace.so is not beside %s (run `make tools`)\n",
                tool_exe_dir());
        return 2;
    }
    // Absolute: the program may change directory before it allocates.
    int len;
    if (out[0] == '/')
        len = snprintf(file, sizeof file, "%s", out);
    else if (getcwd(cwd, sizeof cwd))
        len = snprintf(file, sizeof file, "%s/%s", cwd, out);
    else
        len = snprintf(file, sizeof file, "./%s", out);
    if (len < 0 || (size_t)len >= PATH_MAX) {
        fprintf(stderr, "mallet trace: %s: the path is too long\n", out);
        return 2;
    }
    int probe = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (probe < 0) {
        fprintf(stderr, "mallet trace: %s: %s\n", out, strerror(errno));
        return 2;
    }
    close(probe);
    each_trace(file, remove_trace);

    const char *old = getenv("LD_PRELOAD");
    char preload[PATH_MAX * 2];
    snprintf(preload, sizeof preload, "%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "mallet trace: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        char pidbuf[24];
        snprintf(pidbuf, sizeof pidbuf, "%d", (int)getpid());
        setenv("MALLET_TRACE_FILE", file, 1);
        setenv("MALLET_TRACE_PID", pidbuf, 1);
        setenv("LD_PRELOAD", preload, 1);
        execvp(argv[i], argv + i);
        fprintf(stderr, "mallet trace: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    int status = tool_wait("mallet trace", pid, argv[i], "the recorder");
    each_trace(file, report_trace);
    if (access(file, F_OK) != 0)
        fprintf(stderr, "mallet trace: %s made no allocation: no trace written\n", argv[i]);
    return status;
}
