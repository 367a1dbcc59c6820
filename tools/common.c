// SPDX-License-Identifier: MIT
//
// common.c -- allocator names, build products, child processes, and the
// bits of text every picture and report writes (sizes for people, XML
// escaping): what every verb of the command needs.
//
// Build products are found relative to the running binary
// (/proc/self/exe), so the command works from any directory: in the build
// tree the binary is build/mallet beside build/libmallet.so and
// build/teach/; installed, it is BINDIR/mallet, and `make install` compiled
// in where LIBDIR lies from there (TOOL_INSTALLED): the library under its
// SONAME there, the rest in LIBDIR/mallet/.
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tools.h"

// Where the peers are looked for; MALLET_PEER_DIR overrides it (another
// distribution's layout, or a test's stand-in library).
#define PEER_DIR "/usr/lib/x86_64-linux-gnu"

typedef struct peer {
    const char *name;            // allocator name
    const char *file;            // the preloadable library in PEER_DIR
    const char *package;         // the Debian package that ships it
} peer_t;

static const peer_t peers[] = {
    { "jemalloc", "libjemalloc.so.2", "libjemalloc2" },
    { "tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4" },
    { "mimalloc", "libmimalloc.so.2", "libmimalloc2.0" },
    { "tbbmalloc", "libtbbmalloc_proxy.so.2", "libtbbmalloc2" },
};

void tool_alloc_list(FILE *f)
{
    fprintf(f, "mallet mallet-secure");
    for (const teach_allocator_t *const *t = teach_allocators; *t; t++)
            fprintf(f, " %s", (*t)->name);
    fprintf(f, " glibc");
    for (size_t i = 0; i < sizeof peers / sizeof peers[0]; i++)
        fprintf(f, " %s", peers[i].name);
}

bool tool_alloc_lookup(const char *verb, const char *name, alloc_desc_t *out)
{
    memset(out, 0, sizeof *out);
    out->name = name;
    if (!strcmp(name, "glibc")) {
        out->kind = ALLOC_GLIBC;
        return true;
    }
    if (!strcmp(name, "mallet")) {
        out->kind = ALLOC_MALLET;
        return true;
    }
    if (!strcmp(name, "mallet-secure")) {
        out->kind = ALLOC_MALLET_SECURE;
        return true;
    }
    for (size_t i = 0; i < sizeof peers / sizeof peers[0]; i++) {
        if (!strcmp(name, peers[i].name)) {
            out->kind = ALLOC_PEER;
            out->peer_file = peers[i].file;
            out->peer_package = peers[i].package;
            return true;
        }
    }
    out->teach = teach_find(name);
    if (out->teach) {
        out->kind = ALLOC_TEACH;
        return true;
    }
    fprintf(stderr, "%s: unknown allocator '%s'; valid: ", verb, name);
    tool_alloc_list(stderr);
    fprintf(stderr, "\n");
    return false;
}

const char *tool_exe_dir(void)
{
    static char dir[PATH_MAX];
    if (!dir[0]) {
        ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
        if (n <= 0) {
            strcpy(dir, ".");
        } else {
            dir[n] = 0;
            char *slash = strrchr(dir, '/');
            if (slash)
                *slash = 0;
        }
    }
    return dir;
}

bool tool_find_product(char *out, size_t cap, const char *const *rel)
{
    struct stat st;
    for (; *rel; rel++) {
        if ((size_t)snprintf(out, cap, "%s/%s", tool_exe_dir(), *rel) >= cap)
            continue;
        if (stat(out, &st) == 0) {
            char real[PATH_MAX];
            if (realpath(out, real) && strlen(real) < cap)
                strcpy(out, real);
            return true;
        }
    }
    return false;
}

bool tool_alloc_preload(const char *verb, const alloc_desc_t *a, char *out, size_t cap)
{
    struct stat st;
    out[0] = 0;
    switch (a->kind) {
    case ALLOC_GLIBC:
        return true;
    case ALLOC_PEER: {
        const char *dir = getenv("MALLET_PEER_DIR");
        snprintf(out, cap, "%s/%s", dir && *dir ? dir : PEER_DIR, a->peer_file);
        if (stat(out, &st) == 0)
            return true;
        fprintf(stderr, "%s: %s is not installed (%s missing): apt-get install %s\n",
                verb, a->name, out, a->peer_package);
        return false;
    }
    case ALLOC_MALLET: {
        const char *rel[] = { "libmallet.so", TOOL_INSTALLED(MALLET_SONAME), NULL };
        if (tool_find_product(out, cap, rel))
            return true;
        fprintf(stderr, "%s: libmallet.so not found beside %s (run `make lib`)\n", verb, tool_exe_dir());
        return false;
    }
    case ALLOC_MALLET_SECURE: {
        const char *rel[] = { "libmallet-secure.so", TOOL_INSTALLED("mallet/libmallet-secure.so"), NULL };
        if (tool_find_product(out, cap, rel))
            return true;
        fprintf(stderr, "%s: libmallet-secure.so not found beside %s (run `make secure`)\n", verb,
                tool_exe_dir());
        return false;
    }
    case ALLOC_TEACH: {
        char r1[128], r2[128];
        snprintf(r1, sizeof r1, "teach/libteach-%s.so", a->name);
        snprintf(r2, sizeof r2, TOOL_INSTALLED("mallet/teach/libteach-%s.so"), a->name);
        const char *rel[] = { r1, r2, NULL };
        if (tool_find_product(out, cap, rel))
            return true;
        fprintf(stderr, "%s: the %s preload library (%s) not found beside %s (run `make teach`)\n",
                verb, a->name, r1, tool_exe_dir());
        return false;
    }
    }
    return false;
}

bool tool_preload_first(const char *verb, const char *lib)
{
    const char *old = getenv("LD_PRELOAD");
    size_t n = strlen(lib) + (old ? strlen(old) : 0) + 2;
    char *preload = malloc(n);
    if (!preload) {
        fprintf(stderr, "%s: out of memory\n", verb);
        return false;
    }
    snprintf(preload, n, "%s%s%s", lib, old && *old ? ":" : "", old && *old ? old : "");
    setenv("LD_PRELOAD", preload, 1);
    free(preload);
    return true;
}

// tool_command and tool_command_during: the program's stderr is err when
// it is not -1, and the parent calls during(ctx, pid) before it waits.
static int command(const char *verb, char *const argv[], const char *alloc, pid_t *started, int err,
                   tool_during_fn *during, void *ctx)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", verb, strerror(errno));
        return 1;
    }
    if (pid == 0) {
        if (err >= 0)
            dup2(err, 2);
        execvp(argv[0], argv);
        fprintf(stderr, "%s: cannot run %s: %s\n", verb, argv[0], strerror(errno));
        _exit(errno == ENOENT ? 127 : 126);
    }
    if (started)
        *started = pid;
    // Like system(3): the terminal's ^C and ^\ are for the program.
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    if (during)
        during(ctx, pid);
    int status = tool_wait(verb, pid, argv[0], alloc);
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    return status;
}

int tool_command(const char *verb, char *const argv[], const char *alloc, pid_t *started)
{
    return command(verb, argv, alloc, started, -1, NULL, NULL);
}

int tool_command_during(const char *verb, char *const argv[], const char *alloc, int err, tool_during_fn *during,
                        void *ctx)
{
    return command(verb, argv, alloc, NULL, err, during, ctx);
}

const char *tool_signame(int sig, char *buf, size_t cap)
{
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev)
        snprintf(buf, cap, "SIG%s", abbrev);
    else
        snprintf(buf, cap, "signal %d", sig);
    return buf;
}

int tool_wait(const char *verb, pid_t pid, const char *what, const char *alloc)
{
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "%s: waitpid: %s\n", verb, strerror(errno));
            return 1;
        }
    }
    return tool_status(verb, status, what, alloc);
}

int tool_status(const char *verb, int status, const char *what, const char *alloc)
{
    if (WIFSIGNALED(status)) {
        char name[32];
        int sig = WTERMSIG(status);
        fprintf(stderr, "%s: %s crashed under %s: signal %d (%s)\n", verb, what, alloc, sig,
                tool_signame(sig, name, sizeof name));
        return 128 + sig;
    }
    return WEXITSTATUS(status);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double tool_median(double *v, int n)
{
    if (n <= 0)
        return 0;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

const char *tool_human(uint64_t v, char *buf, size_t cap)
{
    static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double d = (double)v;
    int u = 0;
    while (d >= 1024 && u < 4) {
        d /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", d, unit[u]);
    return buf;
}

void tool_xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        // XML 1.0 has no control characters but tab and newlines.
        default: fputc((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n' ? '?' : *s, f);
        }
    }
}

bool tool_ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

double tool_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
